// out[i] = x[idx[i]].
extern "C" __global__ void gather(const float* x, const unsigned* idx, float* out, unsigned n) {
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = x[idx[i]];
}
