// coop_common.wgsl — what the tensor-core matmuls share: their parameters (gpu::matmul's `Params`
// mirrors them), bindings 2–5, the f16 rounding of operands and the store of an edge tile (a 16 ×
// 16 f32 fragment staged through workgroup memory and copied out where it falls inside the rows
// and the step). Included by matmul_coop.wgsl and matmul_coop_q4_k.wgsl
// (`// include: coop_common.wgsl`), which declare `WG`, binding 1 (X) and the tiles.

struct Params {
    n_rows: u32,      // rows in this piece
    cols: u32,        // elements per row (ne[0])
    row_bytes: u32,   // bytes per row
    x_off: u32,       // X's token 0 (in the units of the kernel's X)
    y_off: u32,       // of row 0 of this piece, token 0
    y_stride: u32,    // elements per token of Y (rows of the whole tensor)
    max_tokens: u32,  // tokens the buffers hold
    first_row: u32,   // the piece's first row in the tensor (its rows of `part`)
    k_split: u32,     // columns per split (a multiple of TK) when the grid has several
    split_tokens: u32, // tokens per split in `part`
    _pad0: u32,
    _pad1: u32,
}

struct Step { pos0: u32, n_tokens: u32, _pad0: u32, _pad1: u32 }

@group(0) @binding(2) var<storage, read_write> y: array<f32>;  // [y_off + max_tokens * y_stride]
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<uniform> step: Step;
@group(0) @binding(5) var<storage, read_write> part: array<f32>;  // [splits, split_tokens, y_stride]

var<workgroup> cs: array<f32, 2048>;  // [8 subgroups, 16 tokens, 16 rows] edge staging

const F16_MAX: f32 = 65504.0;

fn h4(v: vec4<f32>) -> vec4<f16> {
    return vec4<f16>(clamp(v, vec4<f32>(-F16_MAX), vec4<f32>(F16_MAX)));
}

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
