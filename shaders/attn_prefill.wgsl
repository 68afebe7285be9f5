// attn_prefill.wgsl — causal attention of the step's prefill runs (runs of more than one token of
// a sequence, e.g. prompt chunks): a token at position pos attends to cells start..=pos of its
// sequence's cache (start = 0, or pos + 1 - window for a sliding-window layer), scores (q·k) ·
// kq_scale, softmax, Σ p·v with each p rounded to f16 (as the CPU reference and llama.cpp,
// whose P·V product takes p in f16, the V cache's vec_dot_type). CPU twin: gpu::attention_cpu; launcher: core/src/gpu/attention.rs.
//
// Layout: q f32 [n_tokens, n_head, head_dim] at q_off; K and V caches f16 packed two per u32,
// [n_seq, n_ctx, kv_dim] (a region of n_ctx cells per sequence), read as vec4<u32> (8 values;
// head_dim is a multiple of 8 up to 256); att f32 [n_tokens, n_head * head_dim] at att_off. Head
// h reads kv head h / group. The step table's tiles[i] = (first row, rows <= BQ, sequence, first
// position): up to BQ consecutive tokens of one run.
// Dispatch: (n_tiles, n_head, 1) workgroups of WG = BQ · LANES: a tile of query tokens of one
// head. Each token is a row of LANES invocations; lane j owns the 8-dim groups
// j, j + LANES, ... of q and of the output. The workgroup streams the cells its tokens see
// through workgroup memory, BK at a time, twice: first the K tiles alone, each lane taking partial
// dot products over its dims and `row_sums` adding them across the row's lanes, the row keeping
// its running max m and Σ e; then the K tile again and (same memory) the V tile, the row adding
// f16(e / Σ e) · v into its output in registers.

const WG: u32 = 128u;
const BQ: u32 = 16u;
const LANES: u32 = 8u;
// Cells per tile.
const BK: u32 = 16u;
// vec4<u32> per head row at most (head_dim 256), and 8-dim groups per lane at most.
const MAX_L8: u32 = 32u;
const MAX_G: u32 = 4u;
// The max of a row that has seen no cell: finite, so that exp(NEG - m) is a plain 0.
const NEG: f32 = -1.0e30;

struct Params {
    n_head: u32,
    group: u32,       // q heads per kv head (n_head / n_head_kv)
    head_dim: u32,
    kv_dim: u32,      // n_head_kv * head_dim
    q_off: u32,       // offsets in elements
    att_off: u32,
    window: u32,      // cells a token sees, itself included; 0 = all
    n_split: u32,     // (decode only)
    kq_scale: f32,
    n_ctx: u32,       // cells of a sequence's region
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k_cache: array<vec4<u32>>;   // [n_ctx, kv_dim / 8]
@group(0) @binding(2) var<storage, read> v_cache: array<vec4<u32>>;   // [n_ctx, kv_dim / 8]
@group(0) @binding(3) var<storage, read_write> att: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
@group(0) @binding(5) var<storage, read> tiles: array<vec4<u32>>;    // [n_tiles] (row, rows, sequence, position)

// [BK, MAX_L8]: the K tile, then the V tile.
var<workgroup> sh_kv: array<vec4<u32>, BK * MAX_L8>;

fn round_f16(v: f32) -> f32 {
    return unpack2x16float(pack2x16float(vec2<f32>(v, 0.0))).x;
}

// v rounded to f16, as the CPU (and llama.cpp) round a query before dotting it with the f16 keys.
fn f16_round4(v: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(unpack2x16float(pack2x16float(v.xy)), unpack2x16float(pack2x16float(v.zw)));
}

fn unpack8(u: vec4<u32>, hi: bool) -> vec4<f32> {
    if hi {
        return vec4<f32>(unpack2x16float(u.z), unpack2x16float(u.w));
    }
    return vec4<f32>(unpack2x16float(u.x), unpack2x16float(u.y));
}

// The first cell position `pos` sees.
fn window_start(pos: u32) -> u32 {
    if p.window > 0u && pos + 1u > p.window {
        return pos + 1u - p.window;
    }
    return 0u;
}

// Copies cells t0..t0 + BK of the kv head (zeros past `end`) into sh_kv; `head` counts from the
// sequence's region.
fn load_tile(from_v: bool, t0: u32, end: u32, head: u32, l8: u32, lid: u32) {
    let row = p.kv_dim / 8u;
    for (var i = lid; i < BK * l8; i += WG) {
        let c = i / l8;
        let g = i % l8;
        var u = vec4<u32>(0u);
        if t0 + c < end {
            let at = (t0 + c) * row + head + g;
            if from_v {
                u = v_cache[at];
            } else {
                u = k_cache[at];
            }
        }
        sh_kv[c * MAX_L8 + g] = u;
    }
}

// The scaled scores of cells t0..t0 + BK for this invocation's row (NEG where masked): the K tile
// through workgroup memory, each lane's partial dots summed across the row by `row_sums`.
// Called by every invocation in uniform control flow; leaves sh_kv free for the caller.
fn scores(
    t0: u32,
    hi: u32,
    head: u32,
    l8: u32,
    lane: Lane,
    qa: array<vec4<f32>, MAX_G>,
    qb: array<vec4<f32>, MAX_G>,
    valid: bool,
    start: u32,
    pos: u32,
) -> array<f32, BK> {
    let j = role(lane) % LANES;
    load_tile(false, t0, hi, head, l8, lane.lid);
    workgroupBarrier();
    var part: array<f32, BK>;
    for (var c = 0u; c < BK; c++) {
        var s = 0.0;
        for (var i = 0u; i < MAX_G; i++) {
            let g = j + LANES * i;
            if g < l8 {
                let k = sh_kv[c * MAX_L8 + g];
                s += dot(qa[i], unpack8(k, false)) + dot(qb[i], unpack8(k, true));
            }
        }
        part[c] = s;
    }
    let sums = row_sums(part, lane);
    workgroupBarrier();
    var sc: array<f32, BK>;
    for (var c = 0u; c < BK; c++) {
        let cell = t0 + c;
        sc[c] = select(NEG, sums[c] * p.kq_scale, valid && cell >= start && cell <= pos);
    }
    return sc;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, lane: Lane) {
    let hd = p.head_dim;
    let l8 = hd / 8u;
    let h = wg.y;
    let tile = tiles[wg.x];
    let head = tile.z * p.n_ctx * (p.kv_dim / 8u) + (h / p.group) * l8;
    let me = role(lane);
    let r = me / LANES;
    let j = me % LANES;
    let valid = r < tile.y;
    let t = tile.x + min(r, tile.y - 1u);
    let pos = tile.w + min(r, tile.y - 1u);
    let start = window_start(pos);
    // The cells any token of the tile sees.
    let lo = window_start(tile.w);
    let hi = tile.w + tile.y;

    let qrow = p.q_off + t * p.n_head * hd + h * hd;
    var qa: array<vec4<f32>, MAX_G>;
    var qb: array<vec4<f32>, MAX_G>;
    var acc_a: array<vec4<f32>, MAX_G>;
    var acc_b: array<vec4<f32>, MAX_G>;
    for (var i = 0u; i < MAX_G; i++) {
        let g = j + LANES * i;
        if g < l8 {
            let d = qrow + 8u * g;
            qa[i] = f16_round4(vec4<f32>(q[d], q[d + 1u], q[d + 2u], q[d + 3u]));
            qb[i] = f16_round4(vec4<f32>(q[d + 4u], q[d + 5u], q[d + 6u], q[d + 7u]));
        }
    }
    // Two passes over the cells, so that each probability is rounded to f16 once normalised, as
    // the CPU's (and llama.cpp's) P·V product reads it: first the row's max and Σ e (online),
    // then p = f16(e / Σ e) and Σ p·v.
    var m = NEG;
    var l = 0.0;
    for (var t0 = lo; t0 < hi; t0 += BK) {
        let sc = scores(t0, hi, head, l8, lane, qa, qb, valid, start, pos);
        var mt = NEG;
        for (var c = 0u; c < BK; c++) {
            mt = max(mt, sc[c]);
        }
        let m_new = max(m, mt);
        l *= exp(m - m_new);
        m = m_new;
        for (var c = 0u; c < BK; c++) {
            // A masked cell weighs 0 even while the row has seen nothing (m = NEG).
            l += select(0.0, exp(sc[c] - m), sc[c] > NEG);
        }
    }
    let inv = 1.0 / l;
    for (var t0 = lo; t0 < hi; t0 += BK) {
        let sc = scores(t0, hi, head, l8, lane, qa, qb, valid, start, pos);
        load_tile(true, t0, hi, head, l8, lane.lid);
        workgroupBarrier();
        for (var c = 0u; c < BK; c++) {
            let e = select(0.0, round_f16(exp(sc[c] - m) * inv), sc[c] > NEG);
            for (var i = 0u; i < MAX_G; i++) {
                let g = j + LANES * i;
                if g < l8 {
                    let v = sh_kv[c * MAX_L8 + g];
                    acc_a[i] += e * unpack8(v, false);
                    acc_b[i] += e * unpack8(v, true);
                }
            }
        }
        workgroupBarrier();
    }

    if valid {
        let out = p.att_off + t * p.n_head * hd + h * hd;
        for (var i = 0u; i < MAX_G; i++) {
            let g = j + LANES * i;
            if g < l8 {
                let a = acc_a[i];
                let b = acc_b[i];
                for (var e = 0u; e < 4u; e++) {
                    att[out + 8u * g + e] = a[e];
                    att[out + 8u * g + 4u + e] = b[e];
                }
            }
        }
    }
}

// ---- reduce (workgroup memory): a row's partial dot products, summed through workgroup memory.
// When the adapter has subgroups (of 8 or more), the launcher replaces this section with
// shaders/attn_prefill_subgroup.wgsl's. The section declares `struct Lane` (the entry point's
// built-ins), `fn role(lane)` (which invocation plays row role / LANES, lane role % LANES) and
// `fn row_sums(part, lane)`, called by every invocation in uniform control flow.
struct Lane {
    @builtin(local_invocation_index) lid: u32,
}

fn role(lane: Lane) -> u32 {
    return lane.lid;
}

// [BQ, BK, LANES] partial dot products.
var<workgroup> sh_part: array<f32, WG * BK>;

fn row_sums(part: array<f32, BK>, lane: Lane) -> array<f32, BK> {
    let r = lane.lid / LANES;
    let j = lane.lid % LANES;
    for (var c = 0u; c < BK; c++) {
        sh_part[(r * BK + c) * LANES + j] = part[c];
    }
    workgroupBarrier();
    var s: array<f32, BK>;
    for (var c = 0u; c < BK; c++) {
        var x = 0.0;
        for (var i = 0u; i < LANES; i++) {
            x += sh_part[(r * BK + c) * LANES + i];
        }
        s[c] = x;
    }
    workgroupBarrier();
    return s;
}
