// C[cols x n] += A_csrᵀ * B[rows x n]; C is zeroed by the caller.
extern "C" __global__ void csr_mm_t(const unsigned* indptr, const unsigned* indices, const float* data,
                                    const float* b, float* c, unsigned rows, unsigned n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)rows * n) return;
    unsigned r = i / n, j = i % n;
    float x = b[i];
    for (unsigned k = indptr[r]; k < indptr[r + 1]; k++) atomicAdd(&c[(size_t)indices[k] * n + j], data[k] * x);
}
