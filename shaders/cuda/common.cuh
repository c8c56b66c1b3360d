// Shared device helpers for the CUDA kernels (NVRTC: concatenated in front of
// each kernel by core/src/compute/cuda/mod.rs). Same formulas and constants as
// shaders/utils/*.wgsl and core/src/compute/{special,philox}.rs.

#define WG 256
#define PI_F 3.14159265358979f
#define NEG_MAX (-3.402823e38f)

__device__ float lanczos_sum(float x) {
    float a = 0.99999999999980993f;
    a += 676.5203681218851f / (x + 1.0f);
    a += -1259.1392167224028f / (x + 2.0f);
    a += 771.32342877765313f / (x + 3.0f);
    a += -176.61502916214059f / (x + 4.0f);
    a += 12.507343278686905f / (x + 5.0f);
    a += -0.13857109526572012f / (x + 6.0f);
    a += 9.9843695780195716e-6f / (x + 7.0f);
    a += 1.5056327351493116e-7f / (x + 8.0f);
    return a;
}

__device__ float lgamma_pos(float x) {
    float y = x - 1.0f;
    float t = y + 7.5f;
    return 0.91893853320467274f + (y + 0.5f) * logf(t) - t + logf(lanczos_sum(y));
}

// (sin, cos) of 2*pi*u for u in [0, 1): quadrant reduction + Taylor series.
__device__ float2 sincos_turn(float u) {
    float q4 = 4.0f * u;
    unsigned q = min((unsigned)q4, 3u);
    float x = (q4 - (float)q) * 1.5707963267948966f;
    float x2 = x * x;
    float s = x * (1.0f + x2 * (-1.0f / 6.0f + x2 * (1.0f / 120.0f + x2 * (-1.0f / 5040.0f + x2 * (1.0f / 362880.0f + x2 * (-1.0f / 39916800.0f))))));
    float c = 1.0f + x2 * (-0.5f + x2 * (1.0f / 24.0f + x2 * (-1.0f / 720.0f + x2 * (1.0f / 40320.0f + x2 * (-1.0f / 3628800.0f + x2 / 479001600.0f)))));
    if (q == 0u) return make_float2(s, c);
    if (q == 1u) return make_float2(c, -s);
    if (q == 2u) return make_float2(-s, -c);
    return make_float2(-c, s);
}

__device__ float t_lgamma(float x) {
    if (x < 0.5f) {
        float h = x * 0.5f;
        return logf(PI_F / fabsf(sincos_turn(h - floorf(h)).x)) - lgamma_pos(1.0f - x);
    }
    return lgamma_pos(x);
}

__device__ float t_digamma(float x) {
    float acc = 0.0f;
    while (x < 10.0f) { acc -= 1.0f / x; x += 1.0f; }
    float f = 1.0f / (x * x);
    return acc + logf(x) - 0.5f / x
        - f * (1.0f / 12.0f - f * (1.0f / 120.0f - f * (1.0f / 252.0f - f * (1.0f / 240.0f - f / 132.0f))));
}

__device__ float t_softplus(float x) {
    if (x > 20.0f) return x;
    if (x < -20.0f) return expf(x);
    return logf(1.0f + expf(x));
}

__device__ float t_sigmoid(float x) {
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

__device__ uint4 philox4x32(uint4 c, uint2 k) {
    for (int r = 0; r < 10; r++) {
        unsigned hi0 = __umulhi(0xD2511F53u, c.x), lo0 = 0xD2511F53u * c.x;
        unsigned hi1 = __umulhi(0xCD9E8D57u, c.z), lo1 = 0xCD9E8D57u * c.z;
        c = make_uint4(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
        k.x += 0x9E3779B9u;
        k.y += 0xBB67AE85u;
    }
    return c;
}

__device__ float to_uniform(unsigned x) { return ((float)(x >> 8) + 0.5f) * (1.0f / 16777216.0f); }

__device__ unsigned word(uint4 b, unsigned k) { return k == 0u ? b.x : k == 1u ? b.y : k == 2u ? b.z : b.w; }

__device__ uint4 philox_block(unsigned i, unsigned long long seed, unsigned offset) {
    return philox4x32(make_uint4(i / 4u + offset, 0u, 0u, 0u), make_uint2((unsigned)seed, (unsigned)(seed >> 32)));
}

__device__ float philox_uniform(unsigned i, unsigned long long seed, unsigned offset) {
    return to_uniform(word(philox_block(i, seed, offset), i % 4u));
}

__device__ float philox_normal(unsigned i, unsigned long long seed, unsigned offset) {
    uint4 b = philox_block(i, seed, offset);
    unsigned pair = (i % 4u) / 2u;
    float u1 = to_uniform(word(b, 2u * pair)), u2 = to_uniform(word(b, 2u * pair + 1u));
    float r = sqrtf(-2.0f * logf(u1));
    float2 sc = sincos_turn(u2);
    return (i % 2u == 0u) ? r * sc.y : r * sc.x;
}

// Sum (or max) across a 256-thread block; every thread gets the result.
__device__ float block_reduce(float v, bool take_max) {
    __shared__ float scratch[WG];
    unsigned t = threadIdx.x;
    scratch[t] = v;
    __syncthreads();
    for (unsigned s = WG / 2; s > 0; s >>= 1) {
        if (t < s) scratch[t] = take_max ? fmaxf(scratch[t], scratch[t + s]) : scratch[t] + scratch[t + s];
        __syncthreads();
    }
    float r = scratch[0];
    __syncthreads();
    return r;
}
