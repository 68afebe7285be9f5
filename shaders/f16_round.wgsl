// f16_round.wgsl — f32 rounded to the nearest f16 value, ties to even, by its bits: the CPU's
// rounding (half's f16::from_f32), wherever a kernel rounds a value to f16 and keeps it as f32 (a
// query before its dot with the f16 keys, an attention probability, a GELU input, a Q8 scale).
// The kernels hold the round trip through pack2x16float as a stand-in `round_f16` section, and
// every pipeline gets this section spliced over it (gpu::shaders::with_round_f16): WGSL lets
// pack2x16float round either way, and the H100's Vulkan driver folds unpack2x16float(
// pack2x16float(x)) to x (act_quant's Q8_0 scales came out unrounded in 1,687 of 1,728 values).

// ---- round_f16: the exact version. Subnormals keep their 2⁻²⁴ steps; values past 65504 round
// to ±∞ (65520, halfway, to even: ∞); ∞ and NaN stay.
fn round_f16(v: f32) -> f32 {
    let b = bitcast<u32>(v);
    let a = b & 0x7fffffffu;
    if a >= 0x7f800000u {
        return v;
    }
    if a < 0x38800000u {
        return round(v * 16777216.0) * bitcast<f32>(0x33800000u);
    }
    let r = (b + 0xfffu + ((b >> 13u) & 1u)) & 0xffffe000u;
    if (r & 0x7fffffffu) > 0x477fe000u {
        return bitcast<f32>((b & 0x80000000u) | 0x7f800000u);
    }
    return bitcast<f32>(r);
}
