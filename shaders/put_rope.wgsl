// put_rope.wgsl — the store of the fused q|k|v mat-vec in a one-token step with rope_kv.wgsl's
// work done on the way, so that step runs no rope_kv dispatch: the q rows rotated and scaled by
// q_scale into y, the k rows rotated and the v rows packed to f16 into the layer's KV cache at
// the token's (sequence, position), k and v also into y unrotated as the plain store leaves them.
// The same angles (rope_angles.wgsl) and arithmetic as rope_kv.wgsl, so the same bits.
// Launcher: gpu::MatVec::new_rope.
//
// Its `// ---- put` section replaces the mat-vec kernel's own (put_rows.wgsl). It takes a
// kernel of two rows a workgroup (row0 even: a rotated pair's two dims in one workgroup) and
// rope's adjacent pairs (2i, 2i + 1), not NeoX's; the parts' boundaries are even. The lines
// above the section only make this file a module of its own for naga; they are never spliced.

const ROWS: u32 = 2u;

struct Params {
    n_rows: u32,
    cols: u32,
    row_bytes: u32,
    x_off: u32,
    y_off: u32,
    groups_x: u32,
    add: u32,
    split1: u32,
    gap1: u32,
    split2: u32,
    gap2: u32,
    _pad1: u32,
}

@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

// ---- put (rope and KV cache store): one workgroup's pair of rows, through its first invocation.
struct RopePut {
    q_rows: u32,       // rows of q (n_head · head_dim), then kv_rows of k, then of v
    kv_rows: u32,
    head_dim: u32,
    n_rot: u32,        // dims 0..n_rot of a head rotate
    theta_scale: f32,  // base^(-2/n_rot)
    freq_scale: f32,
    attn_factor: f32,
    q_scale: f32,
    has_factors: u32,
    n_ctx: u32,
    n_seq: u32,
    cache_off: u32,    // in u32 words (pairs of f16)
}

@group(0) @binding(4) var<storage, read> factors: array<f32>;       // [n_rot/2] (one unused value if none)
@group(0) @binding(5) var<storage, read_write> k_cache: array<u32>; // [cache_off + n_seq · n_ctx · kv_rows/2]
@group(0) @binding(6) var<storage, read_write> v_cache: array<u32>;
@group(0) @binding(7) var<uniform> rp: RopePut;
@group(0) @binding(8) var<storage, read> at: array<vec2<u32>>;     // the step table: token 0's (sequence, position)

// reduce_angle, theta and turn.
// include: rope_angles.wgsl

var<workgroup> pair: array<f32, 2>;

fn put_rows(row0: u32, total: f32, lid: u32) {
    if lid < 2u {
        pair[lid] = total;
    }
    workgroupBarrier();
    if lid != 0u {
        return;
    }
    let x0 = pair[0];
    let x1 = pair[1];
    let i = p.y_off + row0 + select(0u, p.gap1, row0 >= p.split1) + select(0u, p.gap2, row0 >= p.split2);
    let seat = at[0];
    let an = Angles(rp.freq_scale, rp.attn_factor, rp.has_factors);
    if row0 < rp.q_rows {
        let d = row0 % rp.head_dim;
        if d < rp.n_rot {
            let cs = turn(d / 2u, theta(d / 2u, seat.y, rp.theta_scale), an);
            y[i] = (x0 * cs.x - x1 * cs.y) * rp.q_scale;
            y[i + 1u] = (x0 * cs.y + x1 * cs.x) * rp.q_scale;
        } else {
            y[i] = x0 * rp.q_scale;
            y[i + 1u] = x1 * rp.q_scale;
        }
        return;
    }
    y[i] = x0;
    y[i + 1u] = x1;
    if seat.x >= rp.n_seq || seat.y >= rp.n_ctx {
        return;
    }
    let words = rp.kv_rows / 2u;
    let row = rp.cache_off + (seat.x * rp.n_ctx + seat.y) * words;
    if row0 < rp.q_rows + rp.kv_rows {
        let e = row0 - rp.q_rows;
        let d = e % rp.head_dim;
        var k = vec2<f32>(x0, x1);
        if d < rp.n_rot {
            // rope_kv's k_rotated of dims d and d + 1, one pair: one angle, computed twice there.
            let cs = turn(d / 2u, theta(d / 2u, seat.y, rp.theta_scale), an);
            k = vec2<f32>(x0 * cs.x - x1 * cs.y, x0 * cs.y + x1 * cs.x);
        }
        k_cache[row + e / 2u] = pack2x16float(k);
    } else {
        v_cache[row + (row0 - rp.q_rows - rp.kv_rows) / 2u] = pack2x16float(vec2<f32>(x0, x1));
    }
}
