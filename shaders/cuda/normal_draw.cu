// z = loc + softplus(scale_raw) * eps, eps from the Philox normal stream.
extern "C" __global__ void normal_draw(const float* loc, const float* scale_raw, float* z, unsigned n,
                                       unsigned long long seed, unsigned offset) {
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) z[i] = loc[i] + t_softplus(scale_raw[i]) * philox_normal(i, seed, offset);
}
