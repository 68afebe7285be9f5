// matvec_multi_int.wgsl — the entry point the integer mat-vecs over a few tokens share
// (matvec_multi_q4_k.wgsl, _q6_k, _q8_0): spliced in front of their reduce marker
// (gpu::shaders::matvec_multi_source), after the type's file has declared its geometry (WG, NR =
// 2, NT ≤ 4, ROWS, TPB, BLOCK), its bindings and
//   struct RowSlice; fn row_slice(row, b, s) -> RowSlice: what invocation s takes of row `row`'s
//     block b, decoded;
//   struct TokSlice; fn tok_slice(t, b, s) -> TokSlice: the matching part of token t's levels;
//   fn term(RowSlice, TokSlice) -> f32: their product, scaled.
// The workgroup takes its NR rows through the step's tokens NT at a time; per block, invocation s
// (0..TPB) decodes its slice of each row once and multiplies it with the matching slice of each
// token of the group. The sums live in a named 2 × 4 matrix (a row per column), not an indexed
// array, which the H100's driver keeps in memory rather than registers (2–3× slower,
// docs/PERF.md); tokens past the step repeat the last one's levels and are never stored. The
// NR × NT sums (row-major) go through the spliced reduction, whose `ROWS` is their count. Past
// the first group the rows' bytes come again from cache.

const_assert NR == 2u && NT <= 4u;

// Four tokens' (t..t + 4, the last of the step repeated past it) contributions of both rows.
fn quad(r0: RowSlice, r1: RowSlice, t: u32, last: u32, b: u32, s: u32) -> mat2x4<f32> {
    let x0 = tok_slice(min(t, last), b, s);
    let x1 = tok_slice(min(t + 1u, last), b, s);
    let x2 = tok_slice(min(t + 2u, last), b, s);
    let x3 = tok_slice(min(t + 3u, last), b, s);
    return mat2x4<f32>(
        vec4<f32>(term(r0, x0), term(r0, x1), term(r0, x2), term(r0, x3)),
        vec4<f32>(term(r1, x0), term(r1, x1), term(r1, x2), term(r1, x3)),
    );
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, lane: Lane) {
    let row0 = (wg.y * p.groups_x + wg.x) * NR;
    if row0 >= p.n_rows {
        return;
    }
    let n_tok = min(step.n_tokens, p.max_tokens);
    let s = lane.lid % TPB;
    let row_a = min(row0, p.n_rows - 1u);
    let row_b = min(row0 + 1u, p.n_rows - 1u);
    for (var t0 = 0u; t0 < n_tok; t0 += NT) {
        // Row r's sums over tokens t0.. t0 + 4 (column r).
        var sums4 = mat2x4<f32>();
        for (var b = lane.lid / TPB; b < p.cols / BLOCK; b += WG / TPB) {
            sums4 += quad(row_slice(row_a, b, s), row_slice(row_b, b, s), t0, n_tok - 1u, b, s);
        }
        var acc: array<f32, ROWS>;
        for (var t = 0u; t < NT; t++) {
            acc[t] = sums4[0][t];
            acc[NT + t] = sums4[1][t];
        }
        let total = reduce_rows(acc, lane);
        let r = row0 + lane.lid / NT;
        let t = t0 + lane.lid % NT;
        if lane.lid < ROWS && r < p.n_rows && t < n_tok {
            let i = p.y_off + t * p.y_stride + r;
            y[i] = select(total, y[i] + total, p.add != 0u);
        }
        // The next group's reduction reuses the workgroup memory this one read.
        workgroupBarrier();
    }
}

