// Lower Cholesky factors of `batch` n x n matrices in place, one block per
// matrix, right-looking one column at a time; info[b] = 1-based column of
// the first pivot that was not positive (NaN from there on), else 0.
// Twin of shaders/cholesky.wgsl; oracle: core/src/compute/linalg.rs.
extern "C" __global__ void cholesky(float* a, float* info, unsigned n, unsigned batch) {
    unsigned b = blockIdx.x;
    if (b >= batch) return;
    float* m = a + (size_t)b * n * n;
    __shared__ float pivot;
    unsigned first = 0;
    for (unsigned j = 0; j < n; ++j) {
        if (threadIdx.x == 0) {
            float d = m[(size_t)j * n + j];
            float s = __int_as_float(0x7fc00000);
            if (d > 0.0f) s = sqrtf(d); else if (first == 0) first = j + 1;
            m[(size_t)j * n + j] = s;
            pivot = s;
        }
        __syncthreads();
        float s = pivot;
        for (unsigned i = j + 1 + threadIdx.x; i < n; i += blockDim.x) m[(size_t)i * n + j] /= s;
        __syncthreads();
        for (unsigned i = j + 1 + threadIdx.x; i < n; i += blockDim.x) {
            float lij = m[(size_t)i * n + j];
            for (unsigned c = j + 1; c <= i; ++c) m[(size_t)i * n + c] -= lij * m[(size_t)c * n + j];
        }
        __syncthreads();
    }
    for (size_t t = threadIdx.x; t < (size_t)n * n; t += blockDim.x)
        if (t % n > t / n) m[t] = 0.0f;
    if (threadIdx.x == 0) info[b] = (float)first;
}
