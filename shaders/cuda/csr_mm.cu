// C[rows x n] = A_csr * B[cols x n], one thread per output element.
extern "C" __global__ void csr_mm(const unsigned* indptr, const unsigned* indices, const float* data,
                                  const float* b, float* c, unsigned rows, unsigned n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)rows * n) return;
    unsigned r = i / n, j = i % n;
    float acc = 0.0f;
    for (unsigned k = indptr[r]; k < indptr[r + 1]; k++) acc += data[k] * b[(size_t)indices[k] * n + j];
    c[i] = acc;
}
