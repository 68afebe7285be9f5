// q4_k_scales.wgsl — a Q4_K block's 6-bit sub-block scales and mins, four at a time: one copy for
// every Q4_K kernel, which includes it (`// include: q4_k_scales.wgsl`, gpu::shaders::source).
//
// The packed scale (or min) bytes of sub-blocks 0..4 (`lo`) or 4..8, a byte each, from the 12
// scale bytes as words s0, s1, s2 (see quant/kquants.rs `scale_min_k4`): sub-blocks 0..4 keep
// theirs in the low 6 bits of bytes 0..4 (scales) and 4..8 (mins); sub-blocks 4..8 their low
// nibbles in bytes 8..12 and their top two bits in the spare top bits of bytes 0..8.
fn scales(s0: u32, s2: u32, lo: bool) -> u32 {
    return select((s2 & 0x0F0F0F0Fu) | ((s0 >> 2u) & 0x30303030u), s0 & 0x3F3F3F3Fu, lo);
}

fn mins(s1: u32, s2: u32, lo: bool) -> u32 {
    return select(((s2 >> 4u) & 0x0F0F0F0Fu) | ((s1 >> 2u) & 0x30303030u), s1 & 0x3F3F3F3Fu, lo);
}
