// coop_store.wgsl — the tensor-core matmuls' store of an edge tile: a 16 × 16 f32 fragment staged
// through workgroup memory and copied out where it falls inside the rows and the step. Included
// by matmul_coop.wgsl and matmul_coop_q4_k.wgsl (`// include: coop_store.wgsl`), which declare
// what it uses: `WG`, the parameters `p` (n_rows, y_off, y_stride, first_row, split_tokens), Y
// `y`, the split scratch `part`, and `cs` (8 areas of 256 f32, one per subgroup).

// Stages fragment `acc` (tile rows r.. r + 16, tokens t.. t + 16) through subgroup sg's area and
// writes its in-bounds part to Y, or with several splits to split z's slice of `part`. Called by
// every subgroup alike (uniform control flow).
fn store(acc: coop_mat16x16<f32, C>, sg: u32, lid: u32, row0: u32, tok0: u32, n_tok: u32, r: u32, t: u32, z: u32, splits: u32) {
    let at = sg * 256u;
    let ld = 16u;
    coopStore(acc, &cs[at], ld);
    workgroupBarrier();
    // Invocation lid copies elements lid, lid + 256, ... of all 8 areas: area s's fragment sits at
    // the same (r, t) inside subgroup s's quarter.
    for (var e = lid; e < 2048u; e += WG) {
        let s = e / 256u;
        let i = e % 256u;
        let row = row0 + (s % 4u) * 32u + r + i % 16u;
        let tok = tok0 + (s / 4u) * 32u + t + i / 16u;
        if row < p.n_rows && tok < n_tok {
            if splits > 1u {
                part[(z * p.split_tokens + tok) * p.y_stride + p.first_row + row] = cs[e];
            } else {
                y[p.y_off + tok * p.y_stride + row] = cs[e];
            }
        }
    }
    workgroupBarrier();
}
