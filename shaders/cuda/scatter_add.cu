// out[idx[i]] += x[i] (hardware float atomics).
extern "C" __global__ void scatter_add(const float* x, const unsigned* idx, float* out, unsigned n) {
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) atomicAdd(&out[idx[i]], x[i]);
}
