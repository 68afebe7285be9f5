// sample.wgsl — token[row] = the token a draw picks from logits row `row`: top-k, the softmax of
// those k sorted best first, top-p, min-p, temperature, then the uniform r (aether_core::sample::
// pick, the CPU twin: same order of operations, same sequential sums, so the GPU and the CPU
// disagree only where r falls within rounding of a boundary of the cumulative mass). A sampled
// decode step reads back one id, not n_vocab logits. Launcher: core/src/gpu/sample.rs.
//
// Four dispatches of this kernel, told apart by `stage` (one uniform each), after a fifth where a
// row's draw adjusts logits; rows past step.n_tokens, and rows whose draw has top_k 0 (not
// sampling), return at once.
// 4. (First, one workgroup per row) The draw's logit adjustments, in place: each adjusted token's
//    logit plus its bias, then, penalised (n > 0), divided by the repeat penalty (multiplied if
//    not positive) less n · frequency + presence — sample::Adjustments::apply, the CPU's order.
//    With count_fed (a step run ahead, whose window holds the token the previous step picked),
//    the row's fed token `ids[row]` counts once more: its entry's n + 1, or n = 1 if it has none.
// Stages 0-2 run
// G = ceil(n_vocab / CHUNK) workgroups per row (grid (G, rows)), each over its CHUNK of the row,
// so the row is read by many SMs at once; they meet in the row's words of `hdr`:
// 0. The row's largest key (f32::total_cmp's order as integers), by atomicMax.
// 1. How many logits lie within 1, 2, 4, ..., 256 bins of 1/S logit below the maximum, counted
//    in registers and added up once per workgroup (a ladder: no atomic per logit).
// 2. The logits within the nearest distance of the ladder that holds k (at most L of them) are
//    appended to the row's candidate list `cand`.
// 3. One workgroup per row: the candidates into workgroup memory — or, where the list did not
//    work (fewer than k logits within BINS/S, more than L at the distance that holds k, a NaN or
//    +inf), the exact k by radix selection over the whole row: four passes of a 256-bin
//    histogram fix the threshold key T; candidates are the tokens with key > T and, of those with
//    key == T, the lowest ids (three passes over id bits when the tie straddles the k-th place).
//    Then a bitonic sort (logit descending, id ascending, as the CPU's sort: its first k are the
//    top k), the probabilities in parallel and every sum and prefix sequentially on one
//    invocation (the CPU's order). Last, the row's words of `hdr` go back to zero for the next
//    step (they start at zero: the launcher's buffer is zeroed).

const WG: u32 = 256u;
// Most candidates: sample::DRAW_TOP_K_MAX (the sort gives each invocation one).
const K: u32 = 256u;
// Most entries of the candidate list (a power of two, at least K).
const L: u32 = 1024u;
// Logits per workgroup in stages 0-2: PER per invocation.
const PER: u32 = 16u;
const CHUNK: u32 = 4096u;
// Words of `hdr` per row: the largest key, the nine ladder counts, the candidates listed.
const HDR: u32 = 12u;
// Distance bins per logit, and bins: logits within BINS / S = 32 of the maximum are counted.
const S: f32 = 8.0;
const BINS: f32 = 256.0;
// key_of(+inf): keys from here up are +inf and NaN (a constant: WGSL has no inf literal, and
// Tint rejects one made by a constant bitcast).
const INF_KEY: u32 = 0xff800000u;
// A padding slot of the sort: after every real candidate.
const PAD_ID: u32 = 0xffffffffu;

struct Draw {
    top_k: u32,        // 1..=K; 0: this row does not sample
    top_p: f32,
    min_p: f32,
    temperature: f32,
    r: f32,
    n_adjust: u32,     // the row's entries of `adjust` (at most ADJ)
    repeat_penalty: f32,
    frequency_penalty: f32,
    presence_penalty: f32,
    count_fed: u32,    // 1: ids[row] counts once more in the penalty window
    _pad0: u32,
    _pad1: u32,
}

// One adjusted token of a row (sample::Adjust).
struct Adjust {
    id: u32,
    biased: u32,
    bias: f32,
    n: u32,
}

// Entries of `adjust` per row: sample::DRAW_ADJUST_MAX.
const ADJ: u32 = 64u;

struct Params {
    n_vocab: u32,
    logits_off: u32,  // elements: row r's logits start at logits_off + r · n_vocab
    token_off: u32,   // elements of token
    stage: u32,       // 0..=4
}

struct Step {
    pos0: u32,
    n_tokens: u32,  // output rows this step
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<storage, read_write> logits: array<f32>;  // stage 4 adjusts in place
@group(0) @binding(1) var<storage, read_write> token: array<u32>;
@group(0) @binding(2) var<storage, read> draws: array<Draw>;  // [output rows]
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<uniform> step: Step;
@group(0) @binding(5) var<storage, read_write> hdr: array<atomic<u32>>;  // [rows, HDR]
@group(0) @binding(6) var<storage, read_write> cand: array<vec2<u32>>;   // [rows, L] (key, id)
@group(0) @binding(7) var<storage, read> adjust: array<Adjust>;          // [rows, ADJ]
@group(0) @binding(8) var<storage, read> ids: array<u32>;                // [rows] the fed tokens

var<workgroup> hist: array<atomic<u32>, 256>;
// The bin chosen by a pass, how many elements the bins before it counted, and its own count.
var<workgroup> chosen: vec3<u32>;
var<workgroup> n_cand: atomic<u32>;
var<workgroup> top: atomic<u32>;   // stage 0: the chunk's largest key
var<workgroup> ck: array<u32, L>;  // candidate keys
var<workgroup> ci: array<u32, L>;  // candidate ids
var<workgroup> pr: array<f32, K>;
var<workgroup> kept: u32;

// f32::total_cmp's order as unsigned integers: larger key, larger value.
fn key_of(v: f32) -> u32 {
    let b = bitcast<u32>(v);
    return select(b | 0x80000000u, ~b, (b >> 31u) == 1u);
}

// The value whose key_of is `key`.
fn value_of(key: u32) -> f32 {
    return bitcast<f32>(select(~key, key & 0x7fffffffu, (key >> 31u) == 1u));
}

// Logit c adjusted (stage 4): plus the bias, then, counted n > 0 times in the window, divided by
// the repeat penalty (multiplied if not positive) less n · frequency + presence.
fn adjusted(logit: f32, biased: bool, bias: f32, n: u32, d: Draw) -> f32 {
    var c = logit;
    if biased {
        c += bias;
    }
    if n > 0u {
        c = select(c * d.repeat_penalty, c / d.repeat_penalty, c > 0.0);
        c -= f32(n) * d.frequency_penalty + d.presence_penalty;
    }
    return c;
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

// The rung of the ladder whose logits make the candidate list, from the row's counts: (the
// distance in bins, how many logits lie within it), or (0, L + 1) when no rung holds k or the
// one that does holds more than L.
fn rung(h: u32, k: u32) -> vec2<u32> {
    if atomicLoad(&hdr[h]) >= INF_KEY {
        return vec2<u32>(0u, L + 1u);  // a NaN or +inf: no distances
    }
    for (var r = 0u; r < 9u; r++) {
        let c = atomicLoad(&hdr[h + 1u + r]);
        if c >= k {
            return vec2<u32>(1u << r, select(L + 1u, c, c <= L));
        }
    }
    return vec2<u32>(0u, L + 1u);
}

// Stages 0-2 over one chunk of the row.
fn chunk_stage(lid: u32, g: u32, row: u32, base: u32, n: u32, k: u32) {
    let h = row * HDR;
    let j0 = g * CHUNK + lid;
    if p.stage == 0u {
        if lid == 0u {
            atomicStore(&top, 0u);
        }
        workgroupBarrier();
        var best = 0u;
        for (var i = 0u; i < PER; i++) {
            let j = j0 + i * WG;
            if j < n {
                best = max(best, key_of(logits[base + j]));
            }
        }
        atomicMax(&top, best);
        workgroupBarrier();
        if lid == 0u {
            atomicMax(&hdr[h], atomicLoad(&top));
        }
        return;
    }
    if lid == 0u {
        chosen.x = atomicLoad(&hdr[h]);
    }
    let mkey = workgroupUniformLoad(&chosen).x;
    if mkey >= INF_KEY {
        return;  // a NaN or +inf: stage 3 takes the exact path
    }
    let m = value_of(mkey);
    if p.stage == 1u {
        atomicStore(&hist[lid], 0u);
        workgroupBarrier();
        var lo = vec4<u32>(0u);
        var hi = vec4<u32>(0u);
        var all = 0u;
        for (var i = 0u; i < PER; i++) {
            let j = j0 + i * WG;
            if j < n {
                let x = (m - logits[base + j]) * S;
                if x < BINS {
                    lo += vec4<u32>(vec4<f32>(x) < vec4<f32>(1.0, 2.0, 4.0, 8.0));
                    hi += vec4<u32>(vec4<f32>(x) < vec4<f32>(16.0, 32.0, 64.0, 128.0));
                    all += 1u;
                }
            }
        }
        let counts = array<u32, 9>(lo.x, lo.y, lo.z, lo.w, hi.x, hi.y, hi.z, hi.w, all);
        for (var r = 0u; r < 9u; r++) {
            if counts[r] > 0u {
                atomicAdd(&hist[r], counts[r]);
            }
        }
        workgroupBarrier();
        if lid < 9u {
            let c = atomicLoad(&hist[lid]);
            if c > 0u {
                atomicAdd(&hdr[h + 1u + lid], c);
            }
        }
        return;
    }
    // Stage 2: the logits within the rung (the same x as counted).
    let list = rung(h, k);
    if list.y > L {
        return;
    }
    let edge = f32(list.x);
    for (var i = 0u; i < PER; i++) {
        let j = j0 + i * WG;
        if j < n {
            let v = logits[base + j];
            if (m - v) * S < edge {
                let slot = atomicAdd(&hdr[h + 10u], 1u);
                if slot < L {
                    cand[row * L + slot] = vec2<u32>(key_of(v), j);
                }
            }
        }
    }
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = select(wg.x, wg.y, p.stage < 3u);
    if row >= step.n_tokens {
        return;
    }
    let d = draws[row];
    if d.top_k == 0u {
        return;
    }
    let n = p.n_vocab;
    let base = p.logits_off + row * n;
    if p.stage == 4u {
        let fed = select(0xffffffffu, ids[row], d.count_fed != 0u);
        if lid == 0u {
            atomicStore(&n_cand, 0u);  // here: whether an entry is the fed token
        }
        workgroupBarrier();
        for (var i = lid; i < min(d.n_adjust, ADJ); i += WG) {
            let a = adjust[row * ADJ + i];
            var count = a.n;
            if a.id == fed {
                count += 1u;
                atomicStore(&n_cand, 1u);
            }
            if a.id < n {
                logits[base + a.id] = adjusted(logits[base + a.id], a.biased != 0u, a.bias, count, d);
            }
        }
        workgroupBarrier();
        if lid == 0u && fed < n && atomicLoad(&n_cand) == 0u {
            logits[base + fed] = adjusted(logits[base + fed], false, 0.0, 1u, d);
        }
        return;
    }
    let k = min(min(d.top_k, K), n);
    if p.stage < 3u {
        chunk_stage(lid, wg.x, row, base, n, k);
        return;
    }

    // 1. The candidates: the list stages 0-2 made, or the exact top k.
    let h = row * HDR;
    if lid == 0u {
        atomicStore(&n_cand, 0u);
        let list = rung(h, k);
        chosen = vec3<u32>(list, 0u);
    }
    for (var i = lid; i < L; i += WG) {
        ck[i] = 0u;
        ci[i] = PAD_ID;
    }
    let short = workgroupUniformLoad(&chosen);
    var listed = short.y;
    if listed <= L {
        for (var i = lid; i < listed; i += WG) {
            let c = cand[row * L + i];
            ck[i] = c.x;
            ci[i] = c.y;
        }
    } else {
        // The exact path: the threshold key, the k-th largest.
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
        // `want` of the n_ties elements whose key is tkey are candidates: the lowest ids. Where
        // more tie, the want-th smallest id is selected the same way (ids are below 2^24).
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
        listed = k;
    }
    workgroupBarrier();

    // 2. Bitonic sort of the list (padded to a power of two), best first: each invocation
    //    compares pairs p, p + WG, ... of each stage's L / 2.
    var span = 2u;
    while span < listed {
        span <<= 1u;
    }
    for (var size = 2u; size <= span; size <<= 1u) {
        for (var stride = size >> 1u; stride > 0u; stride >>= 1u) {
            for (var q = lid; q < span / 2u; q += WG) {
                let a = (q / stride) * stride * 2u + q % stride;
                let b = a + stride;
                let first = (a & size) == 0u;
                if before(ck[a], ci[a], ck[b], ci[b]) != first {
                    let tk = ck[a];
                    let ti = ci[a];
                    ck[a] = ck[b];
                    ci[a] = ci[b];
                    ck[b] = tk;
                    ci[b] = ti;
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
    let m0 = l0 / d.temperature;
    if lid < keep {
        pr[lid] = exp(logits[base + ci[lid]] / d.temperature - m0);
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
        // The row's words back to zero for the next step (every read of them is done).
        for (var w = 0u; w < HDR; w++) {
            atomicStore(&hdr[h + w], 0u);
        }
    }
}
