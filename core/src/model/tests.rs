//! Hyper-parameters from byte-built headers: each architecture's fixed choices, the keys that
//! change them, and the errors for what aether does not support.

use crate::error::Error;
use crate::gguf::{Gguf, MetaValue, Writer};
use crate::model::{Arch, Config, FfnAct, RopeKind};

/// A tensor-less file with an architecture's required keys (d 64, 4 heads, 6 layers) plus `extra`.
fn config(arch: &str, extra: &[(&str, MetaValue)]) -> Result<Config, Error> {
    let mut w = Writer::new();
    let k = |s: &str| format!("{arch}.{s}");
    w.set("general.architecture", arch)
        .set(&k("context_length"), 4096u32)
        .set(&k("embedding_length"), 64u32)
        .set(&k("block_count"), 6u32)
        .set(&k("feed_forward_length"), 128u32)
        .set(&k("attention.head_count"), 4u32)
        .set(&k("attention.layer_norm_rms_epsilon"), 1e-6f32)
        .set(&k("vocab_size"), 100u32);
    for (key, v) in extra {
        w.set(&k(key), v.clone());
    }
    let bytes = w.to_bytes(&[]).expect("write");
    Config::from_metadata(Gguf::parse(&bytes).expect("parse").metadata())
}

#[test]
fn architecture_choices() {
    let c = config("llama", &[]).unwrap();
    assert_eq!(
        (c.rope_kind, c.ffn_act, c.q_scale, c.kq_scale, c.embd_scale),
        (RopeKind::Normal, FfnAct::Silu, 1.0, 0.25, None)
    );
    for arch in ["qwen2", "qwen3", "phi3", "gemma3"] {
        assert_eq!(config(arch, &[]).unwrap().rope_kind, RopeKind::Neox, "{arch}");
    }
    // Phi-3 and Gemma 3 scale q before the product, the others the scores.
    let phi3 = config("phi3", &[]).unwrap();
    assert_eq!((phi3.q_scale, phi3.kq_scale), (0.25, 1.0));
    let gemma3 =
        config("gemma3", &[("attention.key_length", 32u32.into()), ("attention.value_length", 32u32.into())])
            .unwrap();
    assert_eq!((gemma3.head_dim, gemma3.q_dim(), gemma3.kv_dim()), (32, 128, 128));
    assert_eq!((gemma3.q_scale, gemma3.kq_scale), (1.0 / 32f32.sqrt(), 1.0));
    assert_eq!(
        (gemma3.ffn_act, gemma3.embd_scale, gemma3.final_logit_softcap),
        (FfnAct::GeluTanh, Some(8.0), None)
    );
    assert_eq!(gemma3.swa, None, "no sliding_window key: every layer global");
    assert_eq!(Arch::ALL.map(Arch::name), ["llama", "qwen2", "qwen3", "phi3", "gemma3"]);
}

#[test]
fn gemma3_sliding_window_layers() {
    let window = ("attention.sliding_window", MetaValue::U32(512));
    let swa = config("gemma3", std::slice::from_ref(&window)).unwrap().swa.unwrap();
    // Default pattern 6: five sliding layers, then a global one.
    assert_eq!((swa.window, swa.rope_base), (512, 10_000.0));
    assert_eq!(swa.layers, [true, true, true, true, true, false]);
    let c = config(
        "gemma3",
        &[
            window.clone(),
            ("attention.sliding_window_pattern", 3u32.into()),
            ("rope.freq_base_swa", 5e4f32.into()),
        ],
    )
    .unwrap();
    assert_eq!(c.swa.as_ref().unwrap().layers, [true, true, false, true, true, false]);
    assert_eq!(c.swa.as_ref().unwrap().rope_base, 5e4);
    assert_eq!((c.window(0), c.window(2)), (Some(512), None));
    let flags = [false, true, false, true, false, true].map(MetaValue::Bool).to_vec();
    let pattern = ("attention.sliding_window_pattern", MetaValue::Array(crate::gguf::ValueType::Bool, flags));
    let c = config("gemma3", &[window.clone(), pattern]).unwrap();
    assert_eq!(c.swa.unwrap().layers, [false, true, false, true, false, true]);
    assert_eq!(config("gemma3", &[("attention.sliding_window", 0u32.into())]).unwrap().swa, None);
    // Phi-3's sliding window is disabled in llama.cpp, so ignored here.
    assert_eq!(config("phi3", &[window]).unwrap().swa, None);
}

#[test]
fn rope_scaling() {
    let c = config("llama", &[("rope.scaling.type", "linear".into()), ("rope.scaling.factor", 4f32.into())])
        .unwrap();
    assert_eq!(c.rope_freq_scale, 0.25);
    let c = config("llama", &[("rope.scaling.type", "none".into()), ("rope.scaling.factor", 4f32.into())])
        .unwrap();
    assert_eq!(c.rope_freq_scale, 1.0);
    let c = config(
        "phi3",
        &[
            ("rope.scaling.attn_factor", 1.19f32.into()),
            ("rope.scaling.original_context_length", 1024u32.into()),
        ],
    )
    .unwrap();
    assert_eq!((c.rope_freq_scale, c.rope_attn_factor, c.n_ctx_orig), (1.0, 1.19, 1024));
    let e = config("llama", &[("rope.scaling.type", "yarn".into())]).unwrap_err();
    assert_eq!(
        e,
        Error::UnsupportedRopeScaling { key: "llama.rope.scaling.type".into(), value: "yarn".into() }
    );
}

#[test]
fn unsupported_hyper_parameters_are_errors() {
    let e = config("mamba", &[]).unwrap_err();
    assert_eq!(e, Error::UnsupportedArchitecture { arch: "mamba".into() });
    // llama.cpp refuses partial rotation for llama and Qwen; Phi-3 and Gemma 3 allow it.
    for arch in ["llama", "qwen2", "qwen3"] {
        let e = config(arch, &[("rope.dimension_count", 8u32.into())]).unwrap_err();
        assert_eq!(e, Error::InvalidHyperParameter { key: format!("{arch}.rope.dimension_count") });
    }
    assert_eq!(config("phi3", &[("rope.dimension_count", 8u32.into())]).unwrap().n_rot, 8);
    let e = config("gemma3", &[("attention.key_length_swa", 8u32.into())]).unwrap_err();
    assert_eq!(e, Error::InvalidHyperParameter { key: "gemma3.attention.key_length_swa".into() });
    let e = config("qwen3", &[("attention.value_length", 8u32.into())]).unwrap_err();
    assert_eq!(e, Error::InvalidHyperParameter { key: "qwen3.attention.value_length".into() });
    let e = config(
        "gemma3",
        &[
            ("attention.sliding_window", 8u32.into()),
            (
                "attention.sliding_window_pattern",
                MetaValue::Array(crate::gguf::ValueType::Bool, vec![MetaValue::Bool(true)]),
            ),
        ],
    )
    .unwrap_err();
    assert_eq!(e, Error::InvalidHyperParameter { key: "gemma3.attention.sliding_window_pattern".into() });
}
