// One Adam step in place; clip > 0 clamps gradients (Pyro's ClippedAdam).
// lr includes the decay; c1, c2 are the bias corrections 1 - beta^t.
extern "C" __global__ void adam(float* w, const float* g, float* m, float* v, unsigned n, float lr, float beta1,
                                float beta2, float eps, float c1, float c2, float clip) {
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float gi = g[i];
    if (clip > 0.0f) gi = fminf(fmaxf(gi, -clip), clip);
    float mi = beta1 * m[i] + (1.0f - beta1) * gi;
    float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
    w[i] -= lr * (mi / c1) / (sqrtf(vi / c2) + eps);
    m[i] = mi;
    v[i] = vi;
}
