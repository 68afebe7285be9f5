//! The pipeline cache: every compute pipeline is built once per device and kept under a readable
//! key naming the kernel and its variant (`matvec_q4_k_sg`, `matvec_q4_k_wg`), so a trace or an
//! error names exactly which WGSL ran. The mat-vec kernels share one explicit bind-group layout
//! (every mat-vec takes the same four bindings), so bind groups built for one type would fit any
//! other. Every other kernel uses the layout wgpu derives from its WGSL ([`Family::Auto`]): its
//! launcher makes bind groups from `pipeline.get_bind_group_layout(0)`, which fit that pipeline
//! only — and a launcher never binds anything else.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::Gpu;
use crate::Result;

pub(crate) struct Pipelines {
    built: Mutex<BTreeMap<String, wgpu::ComputePipeline>>,
    /// Mat-vec bindings: 0 weights (storage, read), 1 x (storage, read), 2 y (storage,
    /// read-write), 3 params (uniform).
    pub(crate) matvec_layout: wgpu::BindGroupLayout,
    matvec_pipeline_layout: wgpu::PipelineLayout,
    /// The partial sums of the tensor-core matmul's split-K (`matmul.rs`), one buffer for every
    /// matmul of the device: each writes it and sums it into its Y before the next runs (a queue
    /// runs its dispatches in order, with barriers between a write and a read).
    pub(crate) split_scratch: Mutex<Option<wgpu::Buffer>>,
    /// The staged product's f16 operands (`matmul.rs`, `Gemm`), one buffer for every matmul of
    /// the device, in the same way.
    pub(crate) gemm_scratch: Mutex<Option<wgpu::Buffer>>,
    /// Kernel sources by key, built in place of the launchers' own (measuring variants).
    sources: Vec<(String, String)>,
}

/// Which bind-group layout a kernel uses.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Family {
    MatVec,
    /// The layout derived from the shader's own bindings.
    Auto,
}

impl Pipelines {
    pub(crate) fn new(device: &wgpu::Device) -> Pipelines {
        let storage = |binding, read_only| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage { read_only },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let uniform = |binding| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        };
        let matvec_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("matvec"),
            entries: &[storage(0, true), storage(1, true), storage(2, false), uniform(3)],
        });
        let matvec_pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("matvec"),
            bind_group_layouts: &[Some(&matvec_layout)],
            immediate_size: 0,
        });
        Pipelines {
            built: Mutex::new(BTreeMap::new()),
            matvec_layout,
            matvec_pipeline_layout,
            split_scratch: Mutex::new(None),
            gemm_scratch: Mutex::new(None),
            sources: Vec::new(),
        }
    }

    /// These pipelines with `sources` (key, WGSL) in place of the launchers' own
    /// ([`GpuOptions::kernel_sources`](super::GpuOptions::kernel_sources)).
    pub(super) fn with_sources(self, sources: Vec<(String, String)>) -> Pipelines {
        Pipelines { sources, ..self }
    }
}

impl Gpu {
    /// The pipeline cached under `key`, built from `source()` (WGSL) on first use.
    pub(crate) fn pipeline(
        &self,
        key: &str,
        family: Family,
        source: impl FnOnce() -> Result<String>,
    ) -> Result<wgpu::ComputePipeline> {
        self.pipeline_with(key, family, &[], source)
    }

    /// [`Gpu::pipeline`] with values for the shader's `override` constants (`key` must name
    /// them: one key, one pipeline).
    pub(crate) fn pipeline_with(
        &self,
        key: &str,
        family: Family,
        overrides: &[(&str, f64)],
        source: impl FnOnce() -> Result<String>,
    ) -> Result<wgpu::ComputePipeline> {
        let mut built = self.pipelines.built.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = built.get(key) {
            return Ok(p.clone());
        }
        let source = match self.pipelines.sources.iter().find(|(k, _)| k == key) {
            Some((_, text)) => text.clone(),
            None => source()?,
        };
        let source = super::shaders::with_round_f16(&source).unwrap_or(source);
        let module = self.device().create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(key),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
        let layout = match family {
            Family::MatVec => Some(&self.pipelines.matvec_pipeline_layout),
            Family::Auto => None,
        };
        let pipeline = self.device().create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(key),
            layout,
            module: &module,
            entry_point: Some("main"),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: overrides,
                ..Default::default()
            },
            cache: None,
        });
        self.check(&format!("building pipeline `{key}`"))?;
        built.insert(key.to_string(), pipeline.clone());
        Ok(pipeline)
    }

    /// Builds `src` (WGSL with a `main` entry point) into a compute pipeline, uncached, and awaits
    /// whether the device took it: for checking kernels against the device's own compiler (the
    /// browser's is stricter than naga in places), not for running them.
    pub async fn check_kernel(&self, name: &str, src: &str) -> Result<()> {
        let scope = self.error_scope();
        let module = self.device().create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(name),
            source: wgpu::ShaderSource::Wgsl(src.into()),
        });
        let _ = self.device().create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(name),
            layout: None,
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        scope.finish(self, &format!("building `{name}`")).await
    }

    /// Keys of the pipelines built so far, in order.
    pub fn pipeline_keys(&self) -> Vec<String> {
        self.pipelines.built.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect()
    }

    /// Keys of [`GpuOptions::kernel_sources`](super::GpuOptions::kernel_sources) that no pipeline
    /// built so far has: a source given for a kernel this model never runs (or a misspelt key).
    pub fn unused_kernel_sources(&self) -> Vec<String> {
        let built = self.pipelines.built.lock().unwrap_or_else(|p| p.into_inner());
        self.pipelines.sources.iter().map(|(k, _)| k).filter(|k| !built.contains_key(*k)).cloned().collect()
    }
}

/// Small helpers every launcher uses to make what it binds.
impl Gpu {
    /// A uniform buffer holding `value` (its parameters, written once at load).
    pub fn uniform<T: bytemuck::Pod>(&self, label: &str, value: &T) -> Result<wgpu::Buffer> {
        let bytes = bytemuck::bytes_of(value);
        let buffer = self.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (bytes.len() as u64).next_multiple_of(16),
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.queue().write_buffer(&buffer, 0, bytes);
        self.check(&format!("creating uniform `{label}`"))?;
        Ok(buffer)
    }

    /// A zeroed storage buffer of `bytes` (rounded up to 4) that kernels read and write and that
    /// can be copied to and from.
    pub fn storage(&self, label: &str, bytes: u64) -> Result<wgpu::Buffer> {
        let buffer = self.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: bytes.max(4).next_multiple_of(4),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        self.check(&format!("creating a {bytes}-byte buffer `{label}`"))?;
        Ok(buffer)
    }

    /// A bind group for group 0 of `pipeline` (built with [`Family::Auto`]): `resources[i]` at
    /// binding `i`.
    pub fn bind(
        &self,
        label: &str,
        pipeline: &wgpu::ComputePipeline,
        resources: &[wgpu::BindingResource<'_>],
    ) -> Result<wgpu::BindGroup> {
        let entries: Vec<_> = resources
            .iter()
            .enumerate()
            .map(|(i, r)| wgpu::BindGroupEntry { binding: i as u32, resource: r.clone() })
            .collect();
        let group = self.device().create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        self.check(&format!("binding `{label}`"))?;
        Ok(group)
    }
}
