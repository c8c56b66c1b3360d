// Solves L X = B (L^T X = B when transpose) in place for `batch`
// lower-triangular n x n L and n x k B, one thread per column of B.
// Twin of shaders/trsm.wgsl; oracle: core/src/compute/linalg.rs.
extern "C" __global__ void trsm(const float* l, float* x, unsigned n, unsigned k, unsigned batch,
                                unsigned transpose) {
    size_t id = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (id >= (size_t)batch * k) return;
    const float* lb = l + (id / k) * n * n;
    float* xb = x + (id / k) * n * k + id % k;
    for (unsigned r = 0; r < n; ++r) {
        unsigned i = transpose ? n - 1 - r : r;
        float s = xb[(size_t)i * k];
        if (transpose) {
            for (unsigned q = i + 1; q < n; ++q) s -= lb[(size_t)q * n + i] * xb[(size_t)q * k];
        } else {
            for (unsigned q = 0; q < i; ++q) s -= lb[(size_t)i * n + q] * xb[(size_t)q * k];
        }
        xb[(size_t)i * k] = s / lb[(size_t)i * n + i];
    }
}
