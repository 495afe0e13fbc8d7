/*
 * rope.cl - S9: rotary position embedding of dequantized (pre-RoPE) keys.
 *
 * S9.3: the angle position * theta_i must be formed and reduced in double;
 * an fp32 angle is useless beyond a few million radians. With cl_khr_fp64
 * (KVQ_HAVE_FP64) the device does exactly what the reference does from the
 * host's double theta_i = pow(base, -2i/d) (rope_data holds d/2 doubles);
 * otherwise, or when the host asks for it (use_table), rope_data holds a
 * host-computed table of (cos, sin) per row and pair.
 */
#pragma OPENCL FP_CONTRACT OFF

/* S9.1: the two elements of pair i. */
inline void kvq_rope_pair(int pairing, uint d, uint i, uint *first, uint *second)
{
    if (pairing == KVQ_ROPE_INTERLEAVED) {
        *first = 2u * i;
        *second = 2u * i + 1u;
    } else {
        *first = i;
        *second = i + d / 2u;
    }
}

/* S9.2, S9.3: (cos, sin) of pair i at `position` for row `row`. */
inline float2 kvq_rope_cs(int use_table, __global const float *rope_data, uint position, ulong row, uint d, uint i)
{
#ifdef KVQ_HAVE_FP64
    if (!use_table) {
        double theta = ((__global const double *)rope_data)[i];
        double angle = fmod((double)position * theta, 0x1.921fb54442d18p+2); /* fmod is exact */
        return (float2)((float)cos(angle), (float)sin(angle));
    }
#endif
    return ((__global const float2 *)rope_data)[row * (d / 2u) + i];
}

/* S9.4: rotate (xa, xb) by (c, s). With fp64 the reference's double
 * evaluation (exact products, one rounding each way); otherwise fp32 with
 * two roundings, which S12.3 allows. */
inline float2 kvq_rope_rotate(float xa, float xb, float2 cs)
{
#ifdef KVQ_HAVE_FP64
    double a = xa, b = xb, c = cs.x, s = cs.y;
    double pa_c = a * c, pb_s = b * s, pa_s = a * s, pb_c = b * c;
    return (float2)((float)(pa_c - pb_s), (float)(pa_s + pb_c));
#else
    float pa_c = xa * cs.x, pb_s = xb * cs.y, pa_s = xa * cs.y, pb_c = xb * cs.x;
    return (float2)(pa_c - pb_s, pa_s + pb_c);
#endif
}

/* Rotates rows x[n][d] in place, row t at positions[t]; one work-item per pair. */
__kernel void kvq_rope_rows(__global float *x, __global const uint *positions, ulong n, uint d, int pairing,
                            int use_table, __global const float *rope_data)
{
    uint half_d = d / 2u;
    ulong total = n * half_d;
    for (ulong g = get_global_id(0); g < total; g += get_global_size(0)) {
        ulong t = g / half_d;
        uint i = (uint)(g - t * half_d), ia, ib;
        kvq_rope_pair(pairing, d, i, &ia, &ib);
        float2 cs = kvq_rope_cs(use_table, rope_data, positions[t], t, d, i);
        __global float *row = x + t * d;
        float2 r = kvq_rope_rotate(row[ia], row[ib], cs);
        row[ia] = r.x;
        row[ib] = r.y;
    }
}
