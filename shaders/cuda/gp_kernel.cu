// GP kernel matrices of `batch` factors over one distance matrix (n values);
// part 0 value, 1 d/amp, 2 d/length scale; kernel 0 Matern-3/2, 1 RBF.
// Twin of shaders/gp_kernel.wgsl; oracle: special::gp_kernel.
extern "C" __global__ void gp_kernel(const float* dist, const float* amp, const float* ls, float* out,
                                     unsigned n, unsigned batch, unsigned kernel, unsigned part) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)n * batch) return;
    unsigned b = i / n;
    float d = dist[i % n], a = amp[b], l = ls[b], k, dk;
    if (kernel == 0) {
        float t = 1.7320508075688772f * d / l, e = expf(-t);
        k = (1.0f + t) * e;
        dk = t * t * e / l;
    } else {
        float z2 = (d / l) * (d / l);
        k = expf(-0.5f * z2);
        dk = k * z2 / l;
    }
    out[i] = part == 1 ? 2.0f * a * k : (part == 2 ? a * a * dk : a * a * k);
}
