// attn_params.wgsl — what every attention kernel shares: the parameters (gpu::attention's
// `Params` mirrors them; one buffer serves the decode, merge and prefill kernels) and the decode
// chunking (gpu::Attention::decode_chunks computes the same). Included by attn_decode.wgsl,
// attn_decode_gqa.wgsl, attn_merge.wgsl, attn_prefill.wgsl and exact_attention.wgsl, which declare `p`.

struct Params {
    n_head: u32,
    group: u32,       // q heads per kv head (n_head / n_head_kv)
    head_dim: u32,
    kv_dim: u32,      // n_head_kv * head_dim
    q_off: u32,       // offsets in elements
    att_off: u32,
    window: u32,      // cells a token sees, itself included; 0 = all
    n_split: u32,     // most chunks per head (decode scratch rows)
    kq_scale: f32,
    n_ctx: u32,       // cells of a sequence's region
    phase: u32,       // decode: 0 statistics (and a one-chunk token's output), 1 Σ p·v of a chunk
    one_chunk: u32,   // decode: a token of at most this many cells takes them in one chunk
    zero: u32,        // 0, which the compiler cannot know (exact_fp.wgsl)
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// The cells start..=pos a decode token attends to (n_kv of them), cut into n chunks of `size`
// cells (the last one shorter): one chunk up to one_chunk cells, else ceil(n_kv / n_split)
// rounded up to whole tiles of `tile` cells. It depends only on the position, so a token attends
// the same way alone or in a batch.
struct DecodeChunks {
    start: u32,
    size: u32,
    n: u32,
}

fn decode_chunks(pos: u32, tile: u32) -> DecodeChunks {
    var start = 0u;
    if p.window > 0u && pos + 1u > p.window {
        start = pos + 1u - p.window;
    }
    let n_kv = pos + 1u - start;
    let split = ((n_kv + p.n_split - 1u) / p.n_split + tile - 1u) / tile * tile;
    let size = select(split, p.one_chunk, n_kv <= p.one_chunk);
    return DecodeChunks(start, size, (n_kv + size - 1u) / size);
}
