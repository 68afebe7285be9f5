// matvec_multi.wgsl — Y[t, r] = Σ_c W[r, c] · X[t, c] for the few tokens t < n_tokens of a step
// (batched decode: one token of each of 2..N sequences) and the n_rows rows of one piece of a
// weight tensor of any type, decoded with the type's `dequant4`; x in f32 (its weights'
// activation format rounded in by act_quant.wgsl). Every weight quad an invocation decodes is
// used for NT tokens. The packed-input types have integer kernels of their own
// (matvec_multi_<type>.wgsl). CPU twin: gpu::matvec_multi_cpu (quant::dot per row and token);
// launcher: core/src/gpu/matvec_multi.rs.
//
// Not valid alone: the pipeline's source is a decoder, shaders/dequant_<type>.wgsl, then this
// file with its reduction spliced on (gpu::shaders::splice_reduce, then with_decoder).
//
// Layout: X is f32, token t's row at element x_off + t · x_stride; Y is f32 [tokens, y_stride]
// from element y_off (y_stride = rows of the whole tensor, y_off includes the piece's first
// row), as matmul.wgsl's.
// Dispatch: ceil(n_rows / NR) workgroups of WG invocations, laid over x then y (groups_x per row
// of the grid). The workgroup takes its NR rows through the step's tokens NT at a time;
// invocation i decodes quads i, i + WG, … of each row (consecutive invocations, consecutive
// bytes) and multiplies each with the same quad of every token of the group, in f32. The NR × NT
// sums (row-major) go through the spliced reduction, whose `ROWS` is their count.

override WG: u32 = 64u;
// Weight rows per workgroup.
const NR: u32 = 2u;
// Tokens per pass over the rows' weights (the launcher builds 2, 4 and 8).
const NT: u32 = 8u;
// Partial sums per invocation, as the reduction calls them: [NR, NT].
const ROWS: u32 = NR * NT;

struct Params {
    n_rows: u32,      // rows in this piece
    cols: u32,        // elements per row (ne[0])
    row_bytes: u32,   // bytes per row
    x_off: u32,       // token 0's row of X, in elements
    x_stride: u32,    // elements per token of X
    y_off: u32,       // of row 0 of this piece, token 0
    y_stride: u32,    // elements per token of Y (rows of the whole tensor)
    groups_x: u32,    // workgroups per row of the dispatch grid
    add: u32,         // 1: Y += W·X (a residual add), 0: Y = W·X
    max_tokens: u32,  // tokens the buffers hold
    _pad0: u32,
    _pad1: u32,
}

struct Step { pos0: u32, n_tokens: u32, _pad0: u32, _pad1: u32 }

@group(0) @binding(1) var<storage, read> x: array<f32>;        // [max_tokens, x_stride]
@group(0) @binding(2) var<storage, read_write> y: array<f32>;  // [y_off + max_tokens · y_stride]
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<uniform> step: Step;

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, lane: Lane) {
    let row0 = (wg.y * p.groups_x + wg.x) * NR;
    if row0 >= p.n_rows {
        return;
    }
    let n_tok = min(step.n_tokens, p.max_tokens);
    for (var t0 = 0u; t0 < n_tok; t0 += NT) {
        var acc: array<f32, ROWS>;
        for (var c = 4u * lane.lid; c < p.cols; c += 4u * WG) {
            // Float rows with cols % 4 == 2 end inside a quad: what lies past the row is zeroed
            // in both operands (select, not multiply: those lanes may hold any bits).
            let keep = vec4<u32>(c, c + 1u, c + 2u, c + 3u) < vec4<u32>(p.cols);
            var wq: array<vec4<f32>, NR>;
            for (var r = 0u; r < NR; r++) {
                let row_byte = min(row0 + r, p.n_rows - 1u) * p.row_bytes;
                wq[r] = select(vec4<f32>(0.0), dequant4(row_byte, c), keep);
            }
            for (var t = 0u; t < NT; t++) {
                if t0 + t < n_tok {
                    let i = p.x_off + (t0 + t) * p.x_stride + c;
                    let xq = select(vec4<f32>(0.0), vec4<f32>(x[i], x[i + 1u], x[i + 2u], x[i + 3u]), keep);
                    for (var r = 0u; r < NR; r++) {
                        acc[r * NT + t] += dot(wq[r], xq);
                    }
                }
            }
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

// ---- reduce: the row reduction, spliced on at load (gpu::shaders::splice_reduce).
