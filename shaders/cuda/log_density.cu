// Log-densities; p1, p2 broadcast. dist: 0 Gamma(shape, rate), 1 Exponential(rate), 2 Normal(loc, scale).
extern "C" __global__ void log_density(const float* x, const float* p1, const float* p2, float* out,
                                       unsigned n, unsigned dist, unsigned n1, unsigned n2) {
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float v = x[i], a = p1[i % n1], b = p2[i % n2];
    float r;
    if (dist == 0) r = a * logf(b) - t_lgamma(a) + (a - 1.0f) * logf(v) - b * v;
    else if (dist == 1) r = logf(a) - a * v;
    else { float z = (v - a) / b; r = -0.5f * z * z - logf(b) - 0.91893853320467274f; }
    out[i] = r;
}
