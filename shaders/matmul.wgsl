// matmul.wgsl — Y[t, r] = Σ_c W[r, c] · X[t, c] for the tokens t < n_tokens of a step and the
// n_rows rows of one piece of a weight tensor of any type: the prefill product (and batched
// decode). CPU twin: gpu::matmul_cpu (quant::dot per row and token); launcher:
// core/src/gpu/matmul.rs.
//
// Not valid alone: the pipeline's source is a decoder, shaders/dequant_<type>.wgsl, followed by
// this file (gpu::shaders::with_decoder). The decoder owns binding 0 (`w`, the piece's GGUF
// bytes) and gives `dequant4(row_byte, i)`, so this one file serves every type.
//
// Layout: X is f32 [max_tokens, cols] from element x_off; Y is f32 [max_tokens, y_stride] from
// element y_off (y_stride = rows of the whole tensor; y_off already includes the piece's first
// row), so the pieces of a split tensor fill one output.
// Dispatch: (ceil(n_rows / TM), ceil(n_tokens / TN)) workgroups of WG invocations; each workgroup
// computes a TM × TN tile of Y. Per step of TK columns the workgroup decodes the TM × TK weight
// tile once into workgroup memory and loads the TN × TK tile of X beside it (each invocation two
// quads of each: 8 invocations per row read its 32 consecutive columns), then invocation
// (tx, ty) = (lid % 16, lid / 16) accumulates rows 4tx.. 4tx + 4 × tokens 4ty.. 4ty + 4 in
// registers, in f32. Tiles are stored column-major (per column k, TM / 4 vec4 of 4 rows) with the
// vec4 index XOR-ed by k / 4, so the transposing stores and the vec4 reads are both free of bank
// conflicts. Invocations whose tokens are all past n_tokens skip the arithmetic (a few tokens of
// batched decode leave most of the workgroup idle instead of busy). 16 KiB of workgroup memory,
// WebGPU's guaranteed minimum; nothing optional is used.

const WG: u32 = 256u;
// Rows and tokens per workgroup tile, columns per step.
const TM: u32 = 64u;
const TN: u32 = 64u;
const TK: u32 = 32u;

struct Params {
    n_rows: u32,      // rows in this piece
    cols: u32,        // elements per row (ne[0])
    row_bytes: u32,   // bytes per row
    x_off: u32,       // offsets in elements
    y_off: u32,       // of row 0 of this piece, token 0
    y_stride: u32,    // elements per token of Y (rows of the whole tensor)
    max_tokens: u32,  // tokens the buffers hold
    // Split-K fields of matmul_coop.wgsl (which shares these parameters); unused here.
    first_row: u32,
    k_split: u32,
    split_tokens: u32,
    _pad0: u32,
    _pad1: u32,
}

struct Step { pos0: u32, n_tokens: u32, _pad0: u32, _pad1: u32 }

@group(0) @binding(1) var<storage, read> x: array<f32>;        // [x_off + max_tokens * cols]
@group(0) @binding(2) var<storage, read_write> y: array<f32>;  // [y_off + max_tokens * y_stride]
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<uniform> step: Step;

// [TK, TM / 4] and [TK, TN / 4] vec4, swizzled (see `slot`).
var<workgroup> ws: array<vec4<f32>, 512>;
var<workgroup> xs: array<vec4<f32>, 512>;

// Where column k's vec4 q (rows or tokens 4q.. 4q + 4) of a tile lives.
fn slot(k: u32, q: u32) -> u32 {
    return k * (TM / 4u) + (q ^ ((k >> 2u) & 7u));
}

fn xv(i: u32) -> vec4<f32> {
    return vec4<f32>(x[i], x[i + 1u], x[i + 2u], x[i + 3u]);
}

// Stores column quad v (columns 4kq.. 4kq + 4 of the step) of row or token `at` of a tile.
fn put_w(at: u32, kq: u32, v: vec4<f32>) {
    for (var c = 0u; c < 4u; c++) {
        ws[slot(4u * kq + c, at / 4u)][at % 4u] = v[c];
    }
}

fn put_x(at: u32, kq: u32, v: vec4<f32>) {
    for (var c = 0u; c < 4u; c++) {
        xs[slot(4u * kq + c, at / 4u)][at % 4u] = v[c];
    }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let n_tok = min(step.n_tokens, p.max_tokens);
    let row0 = wg.x * TM;
    let tok0 = wg.y * TN;
    if tok0 >= n_tok {
        return;
    }
    // Loading: quad lk of rows (tokens) lr and lr + 32 of the tile. Rows past the piece repeat
    // its last row and are never stored.
    let lk = lid % 8u;
    let lr = lid / 8u;
    let rb_a = min(row0 + lr, p.n_rows - 1u) * p.row_bytes;
    let rb_b = min(row0 + lr + 32u, p.n_rows - 1u) * p.row_bytes;
    let t_a = tok0 + lr;
    let t_b = tok0 + lr + 32u;
    let xa = p.x_off + t_a * p.cols;
    let xb = p.x_off + t_b * p.cols;
    // Computing: rows 4tx.., tokens 4ty...
    let tx = lid % 16u;
    let ty = lid / 16u;
    let busy = tok0 + 4u * ty < n_tok;
    var acc: array<vec4<f32>, 4>;  // [token j] rows 4tx.. 4tx + 4

    for (var k0 = 0u; k0 < p.cols; k0 += TK) {
        let c = k0 + 4u * lk;
        var wa = vec4<f32>(0.0);
        var wb = vec4<f32>(0.0);
        var va = vec4<f32>(0.0);
        var vb = vec4<f32>(0.0);
        if c < p.cols {
            wa = dequant4(rb_a, c);
            wb = dequant4(rb_b, c);
            if t_a < n_tok {
                va = xv(xa + c);
            }
            if t_b < n_tok {
                vb = xv(xb + c);
            }
            // Float rows with cols % 4 == 2 end inside a quad: zero what lies past the row in
            // both tiles (select, not multiply: those lanes may hold any bits).
            if c + 4u > p.cols {
                let keep = vec4<u32>(c, c + 1u, c + 2u, c + 3u) < vec4<u32>(p.cols);
                wa = select(vec4<f32>(0.0), wa, keep);
                wb = select(vec4<f32>(0.0), wb, keep);
                va = select(vec4<f32>(0.0), va, keep);
                vb = select(vec4<f32>(0.0), vb, keep);
            }
        }
        put_w(lr, lk, wa);
        put_w(lr + 32u, lk, wb);
        put_x(lr, lk, va);
        put_x(lr + 32u, lk, vb);
        workgroupBarrier();
        if busy {
            for (var k = 0u; k < TK; k++) {
                let wv = ws[slot(k, tx)];
                let xk = xs[slot(k, ty)];
                acc[0] += wv * xk.x;
                acc[1] += wv * xk.y;
                acc[2] += wv * xk.z;
                acc[3] += wv * xk.w;
            }
        }
        workgroupBarrier();
    }

    for (var j = 0u; j < 4u; j++) {
        let t = tok0 + 4u * ty + j;
        if t >= n_tok {
            break;
        }
        for (var i = 0u; i < 4u; i++) {
            let r = row0 + 4u * tx + i;
            if r < p.n_rows {
                y[p.y_off + t * p.y_stride + r] = acc[j][i];
            }
        }
    }
}
