// sample.wgsl — token[row] = the token a draw picks from logits row `row`: top-k, the softmax of
// those k sorted best first, top-p, min-p, temperature, then the uniform r (aether_core::sample::
// pick, the CPU twin: same order of operations, same sequential sums, so the GPU and the CPU
// disagree only where r falls within rounding of a boundary of the cumulative mass). A sampled
// decode step reads back one id, not n_vocab logits. Launcher: core/src/gpu/sample.rs.
//
// Dispatch: one workgroup per output row of the step (rows past step.n_tokens, and rows whose
// draw has top_k 0 — not sampling — return at once).
// 1. The k-th best logit by radix selection on order-preserving keys (f32::total_cmp's order):
//    four passes of a 256-bin histogram over the row, each fixing 8 more bits of the threshold
//    key T. Candidates are the tokens with key > T and, of those with key == T, the lowest ids
//    (three passes over id bits when the tie straddles the k-th place): exactly k of them.
// 2. A bitonic sort of the k (≤ K) candidates in workgroup memory: logit descending, id
//    ascending, as the CPU's sort.
// 3. Probabilities in parallel, every sum and prefix sequential on one invocation (the CPU's
//    order).

const WG: u32 = 256u;
// Most candidates: sample::DRAW_TOP_K_MAX (the sort gives each invocation one).
const K: u32 = 256u;
// A padding slot of the sort: after every real candidate.
const PAD_ID: u32 = 0xffffffffu;

struct Draw {
    top_k: u32,        // 1..=K; 0: this row does not sample
    top_p: f32,
    min_p: f32,
    temperature: f32,
    r: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

struct Params {
    n_vocab: u32,
    logits_off: u32,  // elements: row r's logits start at logits_off + r · n_vocab
    token_off: u32,   // elements of token
    _pad: u32,
}

struct Step {
    pos0: u32,
    n_tokens: u32,  // output rows this step
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read_write> token: array<u32>;
@group(0) @binding(2) var<storage, read> draws: array<Draw>;  // [output rows]
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<uniform> step: Step;

var<workgroup> hist: array<atomic<u32>, 256>;
// The bin chosen by a pass, how many elements the bins before it counted, and its own count.
var<workgroup> chosen: vec3<u32>;
var<workgroup> n_cand: atomic<u32>;
var<workgroup> ck: array<u32, K>;  // candidate keys
var<workgroup> ci: array<u32, K>;  // candidate ids
var<workgroup> pr: array<f32, K>;
var<workgroup> kept: u32;

// f32::total_cmp's order as unsigned integers: larger key, larger value.
fn key_of(v: f32) -> u32 {
    let b = bitcast<u32>(v);
    return select(b | 0x80000000u, ~b, (b >> 31u) == 1u);
}

// Whether candidate (ka, ia) sorts before (kb, ib): the larger logit, then the lower id.
fn before(ka: u32, ia: u32, kb: u32, ib: u32) -> bool {
    return ka > kb || (ka == kb && ia < ib);
}

// One radix pass: histograms byte `shift` of the values v(j) (keys, or ids) of the elements
// whose bits under `mask` equal `prefix`, then finds the bin holding the `want`-th element
// counting from the top bin down (`down`) or the bottom bin up. Returns (bin, elements in the
// bins passed before it, elements in the bin).
fn radix_pass(lid: u32, base: u32, n: u32, ids: bool, tkey: u32, shift: u32, mask: u32, prefix: u32, want: u32, down: bool) -> vec3<u32> {
    atomicStore(&hist[lid], 0u);
    workgroupBarrier();
    for (var j = lid; j < n; j += WG) {
        let key = key_of(logits[base + j]);
        // Keys: every element. Ids: the elements whose key is the threshold.
        let v = select(key, j, ids);
        if (!ids || key == tkey) && (v & mask) == prefix {
            atomicAdd(&hist[(v >> shift) & 0xffu], 1u);
        }
    }
    workgroupBarrier();
    if lid == 0u {
        var acc = 0u;
        var found = vec3<u32>(select(0u, 255u, down), 0u, 0u);
        for (var s = 0u; s < 256u; s++) {
            let b = select(s, 255u - s, down);
            let c = atomicLoad(&hist[b]);
            if acc + c >= want {
                found = vec3<u32>(b, acc, c);
                break;
            }
            acc += c;
        }
        chosen = found;
    }
    return workgroupUniformLoad(&chosen);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = wg.x;
    if row >= step.n_tokens {
        return;
    }
    let d = draws[row];
    if d.top_k == 0u {
        return;
    }
    let n = p.n_vocab;
    let base = p.logits_off + row * n;
    let k = min(min(d.top_k, K), n);

    // 1. The threshold key: the k-th largest.
    var prefix = 0u;
    var mask = 0u;
    var want = k;
    var n_ties = 0u;
    for (var i = 0u; i < 4u; i++) {
        let shift = 24u - 8u * i;
        let c = radix_pass(lid, base, n, false, 0u, shift, mask, prefix, want, true);
        prefix |= c.x << shift;
        mask |= 0xffu << shift;
        want -= c.y;
        n_ties = c.z;
    }
    let tkey = prefix;
    // `want` of the n_ties elements whose key is tkey are candidates: the lowest ids. Where more
    // tie, the want-th smallest id is selected the same way (ids are below 2^24).
    var id_max = 0xffffffffu;
    if n_ties > want {
        var ip = 0u;
        var im = 0u;
        var iw = want;
        for (var i = 0u; i < 3u; i++) {
            let shift = 16u - 8u * i;
            let c = radix_pass(lid, base, n, true, tkey, shift, im, ip, iw, false);
            ip |= c.x << shift;
            im |= 0xffu << shift;
            iw -= c.y;
        }
        id_max = ip;
    }

    // Gather the k candidates.
    if lid == 0u {
        atomicStore(&n_cand, 0u);
    }
    ck[lid] = 0u;
    ci[lid] = PAD_ID;
    workgroupBarrier();
    for (var j = lid; j < n; j += WG) {
        let key = key_of(logits[base + j]);
        if key > tkey || (key == tkey && j <= id_max) {
            let slot = atomicAdd(&n_cand, 1u);
            if slot < K {
                ck[slot] = key;
                ci[slot] = j;
            }
        }
    }
    workgroupBarrier();

    // 2. Bitonic sort, best first; invocation lid owns slot lid.
    for (var size = 2u; size <= K; size <<= 1u) {
        for (var stride = size >> 1u; stride > 0u; stride >>= 1u) {
            let j = lid ^ stride;
            if j > lid {
                let first = (lid & size) == 0u;
                if before(ck[lid], ci[lid], ck[j], ci[j]) != first {
                    let tk = ck[lid];
                    let ti = ci[lid];
                    ck[lid] = ck[j];
                    ci[lid] = ci[j];
                    ck[j] = tk;
                    ci[j] = ti;
                }
            }
            workgroupBarrier();
        }
    }

    // 3. The chain, as sample::choose: softmax of the k, top-p, min-p.
    let l0 = logits[base + ci[0]];
    if lid < k {
        pr[lid] = exp(logits[base + ci[lid]] - l0);
    }
    workgroupBarrier();
    if lid == 0u {
        var sum = 0.0;
        for (var i = 0u; i < k; i++) {
            sum += pr[i];
        }
        var keep = k;
        if d.top_p < 1.0 {
            var mass = 0.0;
            for (var i = 0u; i < k; i++) {
                mass += pr[i] / sum;
                if mass >= d.top_p {
                    keep = i + 1u;
                    break;
                }
            }
        }
        if d.min_p > 0.0 {
            let floor = d.min_p * (pr[0] / sum);
            var above = 0u;
            while above < k && pr[above] / sum >= floor {
                above++;
            }
            keep = min(keep, max(above, 1u));
        }
        kept = keep;
    }
    let keep = workgroupUniformLoad(&kept);
    // Temperature, and the softmax of the kept.
    let m = l0 / d.temperature;
    if lid < keep {
        pr[lid] = exp(logits[base + ci[lid]] / d.temperature - m);
    }
    workgroupBarrier();
    if lid == 0u {
        var sum = 0.0;
        for (var i = 0u; i < keep; i++) {
            sum += pr[i];
        }
        var pick = ci[keep - 1u];
        var acc = 0.0;
        for (var i = 0u; i < keep; i++) {
            acc += pr[i] / sum;
            if d.r < acc {
                pick = ci[i];
                break;
            }
        }
        token[p.token_off + row] = pick;
    }
}
