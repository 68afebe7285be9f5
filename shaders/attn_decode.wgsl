// attn_decode.wgsl — attention of the step's decode tokens (the runs of one token, each of its
// own sequence), flash-decoding style: the cells start..=pos a token attends to are cut into
// n_chunks chunks, workgroup (chunk, head, i) taking one chunk of decode token i. Each
// probability is rounded to f16 once normalised, p = f16(e / Σ e) with e = exp(s − max), as the
// CPU reference and llama.cpp compute it (their P·V product takes p in f16, the V cache's
// vec_dot_type) — so the max and Σ e over all the token's cells come before any p·v:
// - a token with one chunk: phase 0 takes its max and Σ e over the cells, then Σ p·v over them
//   again, and writes its att row (the merge skips it);
// - a token with several: phase 0 writes each chunk's max m and Σ e l to scratch; phase 1 (the
//   same grid, dispatched after) combines all the chunks' (m, l), then writes its chunk's Σ p·v
//   to scratch; attn_merge.wgsl adds the chunks' sums up.
// CPU twin: gpu::attention_cpu; launcher: core/src/gpu/attention.rs.
//
// Layout: q f32 [n_tokens, n_head, head_dim] at q_off; decode token i is row dec[i] of the step,
// at (sequence, position) at[dec[i]] (the step table); K and V caches f16 packed two per u32,
// [n_seq, n_ctx, kv_dim] (a region of n_ctx cells per sequence), read as vec4<u32> (8 values:
// head_dim is a multiple of 8); att f32 [n_tokens, n_head * head_dim] at att_off; scratch f32
// [n_decode, n_head, n_split, 2 + head_dim] (m, l, Σ p·v).
// Chunking: attn_params.wgsl's decode_chunks (the launcher computes the same) — one chunk up to
// one_chunk cells, else chunks of ceil(n_kv / n_split) cells rounded up to TILE, every chunk
// holding at least one cell; it depends only on the token's position, so a token attends the
// same way alone or in a batch.
// Dispatch: (most chunks of any decode token, n_head, n_decode) workgroups of WG; those past
// their token's chunks return at once. Per tile of TILE cells: invocation c scores
// cell c (a whole dot product over head_dim, q from workgroup memory); then the invocations
// split into CPP cell groups of L = head_dim / 8 lanes, lane j owning dims 8j..8j+8, and group g
// takes cells g, g + CPP, ... (coalesced V rows): its running max and Σ e in the first pass, its
// Σ p·v in the second, with the tile's p computed once per cell beforehand. The groups' results
// are combined at the end of each pass. A chunk of one tile (every token of a short context)
// keeps the first pass's scores for the second. Decode is bound by latency, not bandwidth, so
// head_dim is the pipeline's `HEAD_DIM` (the loops over a row unroll, their loads issue
// together) and the Σ p·v loop loads four V rows before it uses them.

// Params and decode_chunks; the geometry (WG, TILE, HEAD_DIM, …), bindings and unpack8.
// include: attn_params.wgsl
// include: attn_decode_common.wgsl

var<workgroup> sh_q: array<f32, MAX_HEAD_DIM>;
var<workgroup> sh_s: array<f32, TILE>;                      // scores of the tile's cells
// [CPP, head_dim]: CPP · head_dim = CPP · L · 8 <= WG · 8. With the rest, ~6 KiB in all.
var<workgroup> sh_acc: array<f32, WG * 8u>;
var<workgroup> sh_m: array<f32, MAX_GROUPS>;
var<workgroup> sh_l: array<f32, MAX_GROUPS>;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let hd = HEAD_DIM;
    let h = wg.y;
    let t = dec[wg.z];
    let seq_pos = at[t];
    let pos = seq_pos.y;
    let cut = decode_chunks(pos, TILE);
    let n_chunks = cut.n;
    if wg.x >= n_chunks {
        return;
    }
    let c_begin = cut.start + wg.x * cut.size;
    let c_end = min(c_begin + cut.size, pos + 1u);
    // Phase 0 of a one-tile chunk leaves its scores in sh_s for the Σ p·v pass.
    let rescore = p.phase == 1u || c_end - c_begin > TILE;
    let q_row = p.q_off + t * p.n_head * hd + h * hd;

    for (var d = lid; d < hd; d += WG) {
        sh_q[d] = round_f16(q[q_row + d]);
    }
    workgroupBarrier();

    let l8 = HEAD_DIM / 8u;           // vec4<u32> per head row
    let cpp = WG / l8;                // cell groups
    let j = lid % l8;
    let g = lid / l8;
    let in_group = g < cpp;
    let row = p.kv_dim / 8u;          // vec4<u32> per cache row
    let head = seq_pos.x * p.n_ctx * row + (h / p.group) * l8;  // the kv head's first vec4 in the region
    let slot0 = (wg.z * p.n_head + h) * p.n_split * (2u + hd);  // this token and head's chunk 0
    let slot = slot0 + wg.x * (2u + hd);

    // The softmax's max M and Σ e: this chunk's (each cell group's online, then combined), the
    // token's when it has one chunk; else the chunks' (m, l) of phase 0, combined.
    var m_all = NEG;
    var l_all = 0.0;
    if p.phase == 0u {
        var m = NEG;
        var l = 0.0;
        for (var t0 = c_begin; t0 < c_end; t0 += TILE) {
            let n = min(TILE, c_end - t0);
            score_tile(t0, n, head, row, lid);
            workgroupBarrier();
            if in_group {
                var mt = NEG;
                for (var c = g; c < n; c += cpp) {
                    mt = max(mt, sh_s[c]);
                }
                let m_new = max(m, mt);
                l *= exp(m - m_new);
                m = m_new;
                for (var c = g; c < n; c += cpp) {
                    l += exp(sh_s[c] - m);
                }
                if j == 0u {
                    sh_m[g] = m;
                    sh_l[g] = l;
                }
            }
            workgroupBarrier();
        }
        // A group that saw no cell has m = NEG and weighs exactly 0.
        for (var i = 0u; i < cpp; i++) {
            m_all = max(m_all, sh_m[i]);
        }
        for (var i = 0u; i < cpp; i++) {
            l_all += exp(sh_m[i] - m_all) * sh_l[i];
        }
        if n_chunks > 1u {
            if lid == 0u {
                scratch[slot] = m_all;
                scratch[slot + 1u] = l_all;
            }
            return;
        }
    } else {
        if n_chunks < 2u {
            return;
        }
        for (var c = 0u; c < n_chunks; c++) {
            m_all = max(m_all, scratch[slot0 + c * (2u + hd)]);
        }
        for (var c = 0u; c < n_chunks; c++) {
            let r = slot0 + c * (2u + hd);
            l_all += exp(scratch[r] - m_all) * scratch[r + 1u];
        }
    }
    let inv = 1.0 / l_all;

    // Σ p·v over the chunk's cells, p = f16(e · inv): group g takes cells g, g + CPP, ...
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    for (var t0 = c_begin; t0 < c_end; t0 += TILE) {
        let n = min(TILE, c_end - t0);
        if rescore {
            score_tile(t0, n, head, row, lid);
            workgroupBarrier();
        }
        // The tile's probabilities, one cell per invocation.
        if lid < n {
            sh_s[lid] = round_f16(exp(sh_s[lid] - m_all) * inv);
        }
        workgroupBarrier();
        if in_group {
            // Four V rows loaded before any is used; the sums stay in cell order.
            let vr = t0 * row + head + j;
            var c = g;
            for (; c + 3u * cpp < n; c += 4u * cpp) {
                let v0 = v_cache[vr + c * row];
                let v1 = v_cache[vr + (c + cpp) * row];
                let v2 = v_cache[vr + (c + 2u * cpp) * row];
                let v3 = v_cache[vr + (c + 3u * cpp) * row];
                let e = vec4<f32>(sh_s[c], sh_s[c + cpp], sh_s[c + 2u * cpp], sh_s[c + 3u * cpp]);
                acc0 += e.x * unpack8(v0, false);
                acc1 += e.x * unpack8(v0, true);
                acc0 += e.y * unpack8(v1, false);
                acc1 += e.y * unpack8(v1, true);
                acc0 += e.z * unpack8(v2, false);
                acc1 += e.z * unpack8(v2, true);
                acc0 += e.w * unpack8(v3, false);
                acc1 += e.w * unpack8(v3, true);
            }
            for (; c < n; c += cpp) {
                let v = v_cache[vr + c * row];
                acc0 += sh_s[c] * unpack8(v, false);
                acc1 += sh_s[c] * unpack8(v, true);
            }
        }
        workgroupBarrier();
    }

    // Combine the cell groups.
    if in_group {
        let a = g * hd + 8u * j;
        for (var i = 0u; i < 4u; i++) {
            sh_acc[a + i] = acc0[i];
            sh_acc[a + 4u + i] = acc1[i];
        }
    }
    workgroupBarrier();
    for (var d = lid; d < hd; d += WG) {
        var o = 0.0;
        for (var i = 0u; i < cpp; i++) {
            o += sh_acc[i * hd + d];
        }
        if n_chunks == 1u {
            att[p.att_off + t * p.n_head * hd + h * hd + d] = o;
        } else {
            scratch[slot + 2u + d] = o;
        }
    }
}

// Scores of cells t0..t0 + n (n <= TILE) into sh_s: invocation c scores cell t0 + c (q from
// sh_q), times kq_scale. The caller puts a barrier after it.
fn score_tile(t0: u32, n: u32, head: u32, row: u32, lid: u32) {
    if lid < n {
        let kr = (t0 + lid) * row + head;
        var s = 0.0;
        for (var i = 0u; i < HEAD_DIM / 8u; i++) {
            let k = k_cache[kr + i];
            let qa = vec4<f32>(sh_q[8u * i], sh_q[8u * i + 1u], sh_q[8u * i + 2u], sh_q[8u * i + 3u]);
            let qb = vec4<f32>(sh_q[8u * i + 4u], sh_q[8u * i + 5u], sh_q[8u * i + 6u], sh_q[8u * i + 7u]);
            s += dot(qa, unpack8(k, false)) + dot(qb, unpack8(k, true));
        }
        sh_s[lid] = s * p.kq_scale;
    }
}

// ---- round_f16: stand-in, replaced at load by f16_round.wgsl's exact section (a device may
// fold this round trip away).
fn round_f16(v: f32) -> f32 {
    return unpack2x16float(pack2x16float(vec2<f32>(v, 0.0))).x;
}
