//! Quant formats: block layouts, CPU reference dequantize and dot product, and quantizers.

mod types;

pub use types::{GgmlType, QK_K};
