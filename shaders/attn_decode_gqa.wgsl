// attn_decode_gqa.wgsl — attn_decode.wgsl's attention of the step's decode tokens with four q
// heads of one kv head a workgroup (models whose q heads per kv head are a multiple of 4: the
// Llama 3 shapes, Mistral, TinyLlama). Each K and V row a workgroup loads serves all four heads:
// a batch's step reads every kv row once where attn_decode.wgsl reads it four times. CPU twin:
// gpu::attention_cpu; launcher: core/src/gpu/attention.rs, which runs it on steps of many
// decode workgroups (`Caps::attn_grouped_min`; one sequence's decode keeps attn_decode.wgsl,
// whose four times as many workgroups finish sooner).
//
// The algorithm, chunks, scratch layout and phases are attn_decode.wgsl's. Each head's
// operations are that kernel's in the same order, the four heads side by side in the lanes of a
// vec4 (scores, max, Σ e, p) or in their own accumulators (Σ p·v): every head's output has the
// same bits as there, so a token attends the same way alone or in a batch (gpu_attention checks
// it bit for bit).
// Dispatch: (most chunks of any decode token, n_head / 4, n_decode) workgroups of WG; workgroup
// (c, y, i) takes heads 4y..4y + 4 of decode token i.

// Params and decode_chunks; the geometry (WG, TILE, HEAD_DIM, …), bindings and unpack8.
// include: attn_params.wgsl
// include: attn_decode_common.wgsl

// q of the four heads, [4, head_dim / 4] vectors; scores and probabilities, a cell's four heads
// in one vector; the cell groups' (m, l), four heads a vector.
var<workgroup> sh_q: array<vec4<f32>, MAX_HEAD_DIM>;
var<workgroup> sh_s: array<vec4<f32>, TILE>;
var<workgroup> sh_acc: array<f32, WG * 8u>;  // [CPP, head_dim], one head at a time
var<workgroup> sh_m: array<vec4<f32>, MAX_GROUPS>;
var<workgroup> sh_l: array<vec4<f32>, MAX_GROUPS>;

fn round4(v: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(round_f16(v.x), round_f16(v.y), round_f16(v.z), round_f16(v.w));
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let hd = HEAD_DIM;
    let h0 = wg.y * 4u;
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
    // The four heads' q rows lie end to end.
    let q_row = p.q_off + t * p.n_head * hd + h0 * hd;

    for (var d = lid; d < 4u * hd; d += WG) {
        sh_q[d / 4u][d % 4u] = round_f16(q[q_row + d]);
    }
    workgroupBarrier();

    let l8 = HEAD_DIM / 8u;
    let cpp = WG / l8;
    let j = lid % l8;
    let g = lid / l8;
    let in_group = g < cpp;
    let row = p.kv_dim / 8u;
    let head = seq_pos.x * p.n_ctx * row + (h0 / p.group) * l8;
    let stride = p.n_split * (2u + hd);                          // scratch floats per head
    let slot0 = (wg.z * p.n_head + h0) * stride;                  // head h0's chunk 0
    let slot = slot0 + wg.x * (2u + hd);

    // Each head's max M and Σ e, as attn_decode.wgsl takes them, a head a lane.
    var m_all = vec4<f32>(NEG);
    var l_all = vec4<f32>(0.0);
    if p.phase == 0u {
        var m = vec4<f32>(NEG);
        var l = vec4<f32>(0.0);
        for (var t0 = c_begin; t0 < c_end; t0 += TILE) {
            let n = min(TILE, c_end - t0);
            score_tile(t0, n, head, row, lid);
            workgroupBarrier();
            if in_group {
                var mt = vec4<f32>(NEG);
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
        for (var i = 0u; i < cpp; i++) {
            m_all = max(m_all, sh_m[i]);
        }
        for (var i = 0u; i < cpp; i++) {
            l_all += exp(sh_m[i] - m_all) * sh_l[i];
        }
        if n_chunks > 1u {
            if lid < 4u {
                scratch[slot + lid * stride] = m_all[lid];
                scratch[slot + lid * stride + 1u] = l_all[lid];
            }
            return;
        }
    } else {
        if n_chunks < 2u {
            return;
        }
        for (var c = 0u; c < n_chunks; c++) {
            let r = slot0 + c * (2u + hd);
            m_all = max(m_all, vec4<f32>(scratch[r], scratch[r + stride], scratch[r + 2u * stride], scratch[r + 3u * stride]));
        }
        for (var c = 0u; c < n_chunks; c++) {
            let r = slot0 + c * (2u + hd);
            let m4 = vec4<f32>(scratch[r], scratch[r + stride], scratch[r + 2u * stride], scratch[r + 3u * stride]);
            let l4 = vec4<f32>(scratch[r + 1u], scratch[r + stride + 1u], scratch[r + 2u * stride + 1u], scratch[r + 3u * stride + 1u]);
            l_all += exp(m4 - m_all) * l4;
        }
    }
    let inv = 1.0 / l_all;

    // Σ p·v over the chunk's cells: head i's 8 dims in a{i}l (low 4) and a{i}h; each V row
    // loaded once for the four.
    var a0l = vec4<f32>(0.0);
    var a0h = vec4<f32>(0.0);
    var a1l = vec4<f32>(0.0);
    var a1h = vec4<f32>(0.0);
    var a2l = vec4<f32>(0.0);
    var a2h = vec4<f32>(0.0);
    var a3l = vec4<f32>(0.0);
    var a3h = vec4<f32>(0.0);
    for (var t0 = c_begin; t0 < c_end; t0 += TILE) {
        let n = min(TILE, c_end - t0);
        if rescore {
            score_tile(t0, n, head, row, lid);
            workgroupBarrier();
        }
        if lid < n {
            sh_s[lid] = round4(exp(sh_s[lid] - m_all) * inv);
        }
        workgroupBarrier();
        if in_group {
            let vr = t0 * row + head + j;
            var c = g;
            for (; c + 3u * cpp < n; c += 4u * cpp) {
                let v0 = v_cache[vr + c * row];
                let v1 = v_cache[vr + (c + cpp) * row];
                let v2 = v_cache[vr + (c + 2u * cpp) * row];
                let v3 = v_cache[vr + (c + 3u * cpp) * row];
                let e0 = sh_s[c];
                let e1 = sh_s[c + cpp];
                let e2 = sh_s[c + 2u * cpp];
                let e3 = sh_s[c + 3u * cpp];
                let v0l = unpack8(v0, false);
                let v0h = unpack8(v0, true);
                let v1l = unpack8(v1, false);
                let v1h = unpack8(v1, true);
                let v2l = unpack8(v2, false);
                let v2h = unpack8(v2, true);
                let v3l = unpack8(v3, false);
                let v3h = unpack8(v3, true);
                a0l += e0.x * v0l; a0h += e0.x * v0h; a0l += e1.x * v1l; a0h += e1.x * v1h;
                a0l += e2.x * v2l; a0h += e2.x * v2h; a0l += e3.x * v3l; a0h += e3.x * v3h;
                a1l += e0.y * v0l; a1h += e0.y * v0h; a1l += e1.y * v1l; a1h += e1.y * v1h;
                a1l += e2.y * v2l; a1h += e2.y * v2h; a1l += e3.y * v3l; a1h += e3.y * v3h;
                a2l += e0.z * v0l; a2h += e0.z * v0h; a2l += e1.z * v1l; a2h += e1.z * v1h;
                a2l += e2.z * v2l; a2h += e2.z * v2h; a2l += e3.z * v3l; a2h += e3.z * v3h;
                a3l += e0.w * v0l; a3h += e0.w * v0h; a3l += e1.w * v1l; a3h += e1.w * v1h;
                a3l += e2.w * v2l; a3h += e2.w * v2h; a3l += e3.w * v3l; a3h += e3.w * v3h;
            }
            for (; c < n; c += cpp) {
                let v = v_cache[vr + c * row];
                let e = sh_s[c];
                let vl = unpack8(v, false);
                let vh = unpack8(v, true);
                a0l += e.x * vl; a0h += e.x * vh;
                a1l += e.y * vl; a1h += e.y * vh;
                a2l += e.z * vl; a2h += e.z * vh;
                a3l += e.w * vl; a3h += e.w * vh;
            }
        }
        workgroupBarrier();
    }

    combine(0u, a0l, a0h, in_group, g, j, lid, t, h0, n_chunks, slot, stride);
    combine(1u, a1l, a1h, in_group, g, j, lid, t, h0, n_chunks, slot, stride);
    combine(2u, a2l, a2h, in_group, g, j, lid, t, h0, n_chunks, slot, stride);
    combine(3u, a3l, a3h, in_group, g, j, lid, t, h0, n_chunks, slot, stride);
}

// Head i's cell groups' sums added up and written (called by every invocation alike).
fn combine(i: u32, lo: vec4<f32>, hi: vec4<f32>, in_group: bool, g: u32, j: u32, lid: u32, t: u32, h0: u32, n_chunks: u32, slot: u32, stride: u32) {
    let hd = HEAD_DIM;
    let cpp = WG / (HEAD_DIM / 8u);
    if in_group {
        let a = g * hd + 8u * j;
        for (var k = 0u; k < 4u; k++) {
            sh_acc[a + k] = lo[k];
            sh_acc[a + 4u + k] = hi[k];
        }
    }
    workgroupBarrier();
    for (var d = lid; d < hd; d += WG) {
        var o = 0.0;
        for (var k = 0u; k < cpp; k++) {
            o += sh_acc[k * hd + d];
        }
        if n_chunks == 1u {
            att[p.att_off + t * p.n_head * hd + (h0 + i) * hd + d] = o;
        } else {
            scratch[slot + i * stride + 2u + d] = o;
        }
    }
    workgroupBarrier();
}

// Scores of cells t0..t0 + n into sh_s, the four heads' in one vector.
fn score_tile(t0: u32, n: u32, head: u32, row: u32, lid: u32) {
    if lid < n {
        let kr = (t0 + lid) * row + head;
        let q4 = HEAD_DIM / 4u;
        var s = vec4<f32>(0.0);
        for (var i = 0u; i < HEAD_DIM / 8u; i++) {
            let k = k_cache[kr + i];
            let ka = unpack8(k, false);
            let kb = unpack8(k, true);
            let o = 2u * i;
            s += vec4<f32>(
                dot(sh_q[o], ka) + dot(sh_q[o + 1u], kb),
                dot(sh_q[q4 + o], ka) + dot(sh_q[q4 + o + 1u], kb),
                dot(sh_q[2u * q4 + o], ka) + dot(sh_q[2u * q4 + o + 1u], kb),
                dot(sh_q[3u * q4 + o], ka) + dot(sh_q[3u * q4 + o + 1u], kb),
            );
        }
        sh_s[lid] = s * p.kq_scale;
    }
}

// ---- round_f16: stand-in, replaced at load by f16_round.wgsl's exact section (a device may
// fold this round trip away).
fn round_f16(v: f32) -> f32 {
    return unpack2x16float(pack2x16float(vec2<f32>(v, 0.0))).x;
}
