#!/usr/bin/env python3
"""Writes tensor-core GEMM kernel variants for tests/examples/gemm_probe.rs into the directory
given: Y[t, r] = sum_k A[r, k] X[t, k], A [M, K] f16, X [N, K] f16 (or f32), Y [N, M] f32.

`d<FM><FN>_<SM>x<SN>`: each subgroup loads its FM x FN 16x16 fragments straight from storage.
`s…`/`h…`: the workgroup's tiles go through double-buffered workgroup memory (rows of 32 columns
plus 8 halves of padding), the next step's loaded during this step's multiply-adds; `s` with
16-byte loads, `h` with 8-byte ones; `xv`/`xs` read X as f32 (vec4 or scalar loads) and round it
on the way. SM x SN subgroups per workgroup."""
import sys

HEAD = """enable f16;
enable wgpu_cooperative_matrix;
struct P { m: u32, k: u32, n: u32, _p: u32 }
@group(0) @binding(3) var<uniform> p: P;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
"""

def direct(fm, fn, sgm, sgn):
    tm, tn, wg = 16*fm*sgm, 16*fn*sgn, 32*sgm*sgn
    s = HEAD + f"""@group(0) @binding(0) var<storage, read> a: array<vec4<f16>>;
@group(0) @binding(1) var<storage, read> x: array<vec4<f16>>;
const TM: u32 = {tm}u;
const TN: u32 = {tn}u;
const WG: u32 = {wg}u;
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(subgroup_id) sg: u32) {{
    let r0 = wg.x * TM + (sg % {sgm}u) * {16*fm}u;
    let t0 = wg.y * TN + (sg / {sgm}u) * {16*fn}u;
    let ks = p.k / 4u;
"""
    for i in range(fm):
        for j in range(fn):
            s += f"    var c{i}{j} = coop_mat16x16<f32, C>();\n"
    for i in range(fm):
        s += f"    var ia{i} = (r0 + {16*i}u) * ks;\n"
    for j in range(fn):
        s += f"    var ib{j} = (t0 + {16*j}u) * ks;\n"
    s += "    for (var k = 0u; k < ks; k += 4u) {\n"
    for i in range(fm):
        s += f"        let pa{i} = ia{i} + k;\n        let a{i} = coopLoadT<coop_mat16x16<f16, A>>(&a[pa{i}], ks);\n"
    for j in range(fn):
        s += f"        let pb{j} = ib{j} + k;\n        let b{j} = coopLoad<coop_mat16x16<f16, B>>(&x[pb{j}], ks);\n"
    for i in range(fm):
        for j in range(fn):
            s += f"        c{i}{j} = coopMultiplyAdd(a{i}, b{j}, c{i}{j});\n"
    s += "    }\n"
    s += "    let ms = p.m;\n"
    for i in range(fm):
        for j in range(fn):
            s += f"    let o{i}{j} = (t0 + {16*j}u) * p.m + r0 + {16*i}u;\n    coopStore(c{i}{j}, &y[o{i}{j}], ms);\n"
    s += "}\n"
    return s

def shared(fm, fn, sgm, sgn, tk=32, ld8=False, xf=None):
    tm, tn, wg = 16*fm*sgm, 16*fn*sgn, 32*sgm*sgn
    ks = tk // 4 + 2  # vec4<f16> per row incl. padding
    q = tk // 4 if ld8 else tk // 8  # loads per row
    la = tm * q // wg  # 16-byte loads of A per invocation
    lb = tn * q // wg
    assert la * wg == tm * q and lb * wg == tn * q
    rows_per = wg // q
    LT = "vec4<f16>" if ld8 else "vec4<u32>"
    XT = {None: LT, "vec4": "vec4<f32>", "scalar": "f32"}[xf]
    XFN = {None: "", "vec4": """fn XV(a: vec4<f32>, b: vec4<f32>) -> array<vec4<f16>, 2> {
    return array<vec4<f16>, 2>(vec4<f16>(a), vec4<f16>(b));
}
""", "scalar": """fn XS(i: u32) -> array<vec4<f16>, 2> {
    return array<vec4<f16>, 2>(vec4<f16>(vec4<f32>(x[i], x[i + 1u], x[i + 2u], x[i + 3u])), vec4<f16>(vec4<f32>(x[i + 4u], x[i + 5u], x[i + 6u], x[i + 7u])));
}
"""}[xf]
    s = HEAD + f"""@group(0) @binding(0) var<storage, read> a: array<{LT}>;
@group(0) @binding(1) var<storage, read> x: array<{XT}>;
const TM: u32 = {tm}u;
const TN: u32 = {tn}u;
const WG: u32 = {wg}u;
const KS: u32 = {ks}u;
var<workgroup> wa: array<vec4<f16>, {2*tm*ks}>;
var<workgroup> wb: array<vec4<f16>, {2*tn*ks}>;
{XFN}fn put(dst: u32, v: vec4<u32>, is_a: bool) {{
    let lo = vec4<f16>(vec2<f16>(unpack2x16float(v.x)), vec2<f16>(unpack2x16float(v.y)));
    let hi = vec4<f16>(vec2<f16>(unpack2x16float(v.z)), vec2<f16>(unpack2x16float(v.w)));
    if is_a {{ wa[dst] = lo; wa[dst + 1u] = hi; }} else {{ wb[dst] = lo; wb[dst + 1u] = hi; }}
}}
@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(subgroup_id) sg: u32, @builtin(local_invocation_index) lid: u32) {{
    let ar = (sg % {sgm}u) * {16*fm}u;
    let bt = (sg / {sgm}u) * {16*fn}u;
    let kq = p.k / {8 // (2 if ld8 else 1)}u;
    let lq = lid % {q}u;
    let lr = lid / {q}u;
    let ga = (wg.x * TM + lr) * kq + lq;
    let gb = (wg.y * TN + lr) * kq + lq;
    let sd = lr * KS + {1 if ld8 else 2}u * lq;
    let ksv = KS;
"""
    def loads(kexpr):
        out = ""
        for i in range(la):
            out += f"        ra{i} = a[ga + {rows_per*i}u * kq + {kexpr}];\n"
        for i in range(lb):
            if xf is None:
                out += f"        rb{i} = x[gb + {rows_per*i}u * kq + {kexpr}];\n"
            elif xf == "vec4":
                out += f"        rb{i} = XV(x[2u * (gb + {rows_per*i}u * kq + {kexpr})], x[2u * (gb + {rows_per*i}u * kq + {kexpr}) + 1u]);\n"
            else:
                out += f"        rb{i} = XS(8u * (gb + {rows_per*i}u * kq + {kexpr}));\n"
        return out
    def stores(buf):
        out = ""
        for i in range(la):
            out += f"        wa[{buf} * {tm*ks}u + sd + {rows_per*i*ks}u] = ra{i};\n" if ld8 else f"        put({buf} * {tm*ks}u + sd + {rows_per*i*ks}u, ra{i}, true);\n"
        for i in range(lb):
            if xf is not None:
                out += f"        wb[{buf} * {tn*ks}u + sd + {rows_per*i*ks}u] = rb{i}[0];\n        wb[{buf} * {tn*ks}u + sd + {rows_per*i*ks}u + 1u] = rb{i}[1];\n"
            else:
                out += f"        wb[{buf} * {tn*ks}u + sd + {rows_per*i*ks}u] = rb{i};\n" if ld8 else f"        put({buf} * {tn*ks}u + sd + {rows_per*i*ks}u, rb{i}, false);\n"
        return out
    for i in range(la):
        s += f"    var ra{i}: {LT};\n"
    for i in range(lb):
        s += f"    var rb{i}: {LT if xf is None else 'array<vec4<f16>, 2>'};\n"
    for i in range(fm):
        for j in range(fn):
            s += f"    var c{i}{j} = coop_mat16x16<f32, C>();\n"
    s += "    {\n" + loads("0u") + stores("0u") + "    }\n    workgroupBarrier();\n"
    s += f"    let steps = p.k / {tk}u;\n"
    s += "    for (var st = 0u; st < steps; st++) {\n"
    s += "        let cur = st % 2u;\n"
    s += "        let more = st + 1u < steps;\n"
    s += "        if more {\n" + loads(f"(st + 1u) * {q}u") + "        }\n"
    for kk in range(tk // 16):
        for i in range(fm):
            s += f"        let pa{kk}{i} = cur * {tm*ks}u + (ar + {16*i}u) * KS + {4*kk}u;\n        let a{kk}{i} = coopLoadT<coop_mat16x16<f16, A>>(&wa[pa{kk}{i}], ksv);\n"
        for j in range(fn):
            s += f"        let pb{kk}{j} = cur * {tn*ks}u + (bt + {16*j}u) * KS + {4*kk}u;\n        let b{kk}{j} = coopLoad<coop_mat16x16<f16, B>>(&wb[pb{kk}{j}], ksv);\n"
        for i in range(fm):
            for j in range(fn):
                s += f"        c{i}{j} = coopMultiplyAdd(a{kk}{i}, b{kk}{j}, c{i}{j});\n"
    s += "        if more {\n" + stores("(1u - cur)") + "        }\n"
    s += "        workgroupBarrier();\n    }\n"
    s += "    let ms = p.m;\n"
    for i in range(fm):
        for j in range(fn):
            s += f"    let o{i}{j} = (wg.y * TN + bt + {16*j}u) * p.m + wg.x * TM + ar + {16*i}u;\n    coopStore(c{i}{j}, &y[o{i}{j}], ms);\n"
    s += "}\n"
    return s

variants = {
    "d44_2x2": lambda: direct(4, 4, 2, 2),
    "d24_4x2": lambda: direct(2, 4, 4, 2),
    "d22_4x2": lambda: direct(2, 2, 4, 2),
    "d42_2x4": lambda: direct(4, 2, 2, 4),
    "s44_2x2": lambda: shared(4, 4, 2, 2),
    "xv24_4x2": lambda: shared(2, 4, 4, 2, xf="vec4"),
    "xs24_4x2": lambda: shared(2, 4, 4, 2, xf="scalar"),
    "xv44_2x2": lambda: shared(4, 4, 2, 2, xf="vec4"),
    "xv24_4x1": lambda: shared(2, 4, 4, 1, xf="vec4"),
    "xv22_4x2": lambda: shared(2, 2, 4, 2, xf="vec4"),
    "h44_2x2": lambda: shared(4, 4, 2, 2, ld8=True),
    "h24_4x2": lambda: shared(2, 4, 4, 2, ld8=True),
    "h22_4x2": lambda: shared(2, 2, 4, 2, ld8=True),
    "s24_4x2": lambda: shared(2, 4, 4, 2),
    "s22_4x2": lambda: shared(2, 2, 4, 2),
    "s42_2x2": lambda: shared(4, 2, 2, 2),
}
for name, f in variants.items():
    open(f"{sys.argv[1]}/{name}.wgsl", "w").write(f())
