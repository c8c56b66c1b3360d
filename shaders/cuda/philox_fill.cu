// The Philox uniform (normal = 0) or standard-normal stream.
extern "C" __global__ void philox_fill(float* out, unsigned n, unsigned normal, unsigned long long seed, unsigned offset) {
    unsigned i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    out[i] = normal ? philox_normal(i, seed, offset) : philox_uniform(i, seed, offset);
}
