// put_rows.wgsl — the end of a mat-vec kernel: each row's total to its place in y. Included in
// the kernel's `// ---- put` section, which put_rope.wgsl's section replaces in the fused q|k|v
// mat-vec of a one-token step (the rope and KV cache store done there).
//
// Row r of the piece goes to y_off + r, moved past gap1 from local row split1 on and past gap2
// from split2 on (a fused tensor's parts into their own regions); `add` adds it to what is there.
// Called once by every invocation, in uniform control flow, with `reduce_rows`' result.
fn put_rows(row0: u32, total: f32, lid: u32) {
    if lid < ROWS && row0 + lid < p.n_rows {
        let r = row0 + lid;
        let i = p.y_off + r + select(0u, p.gap1, r >= p.split1) + select(0u, p.gap2, r >= p.split2);
        y[i] = select(total, y[i] + total, p.add != 0u);
    }
}
