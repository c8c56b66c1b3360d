// One coordinate-descent sweep of NMF (scikit-learn's "cd" solver) over the
// rows of w (rows x k), one thread per row; violation[i] = sum_t |projected gradient|.
extern "C" __global__ void nmf_cd(float* w, const float* hht, const float* xht, float* violation,
                                  unsigned rows, unsigned k) {
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows) return;
    size_t base = (size_t)i * k;
    float v = 0.0f;
    for (unsigned t = 0; t < k; ++t) {
        float grad = -xht[base + t];
        for (unsigned r = 0; r < k; ++r) grad += hht[t * k + r] * w[base + r];
        float cur = w[base + t];
        float pg = cur == 0.0f ? fminf(0.0f, grad) : grad;
        v += fabsf(pg);
        float hess = hht[t * k + t];
        if (hess != 0.0f) w[base + t] = fmaxf(cur - grad / hess, 0.0f);
    }
    violation[i] = v;
}
