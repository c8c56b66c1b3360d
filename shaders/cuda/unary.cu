// out = f(x). op: 0 exp, 1 log, 2 softplus, 3 sigmoid, 4 lgamma, 5 digamma, 6 sign.
extern "C" __global__ void unary(const float* x, float* out, unsigned n, unsigned op) {
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float v = x[i];
    float r;
    switch (op) {
        case 0: r = expf(v); break;
        case 1: r = logf(v); break;
        case 2: r = t_softplus(v); break;
        case 3: r = t_sigmoid(v); break;
        case 4: r = t_lgamma(v); break;
        case 5: r = t_digamma(v); break;
        default: r = (float)((v > 0.0f) - (v < 0.0f)); break;
    }
    out[i] = r;
}
