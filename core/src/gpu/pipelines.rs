//! The pipeline cache: every compute pipeline is built once per device and kept under a readable
//! key naming the kernel and its variant (`matvec_q4_k_sg`, `matvec_q4_k_wg`), so a trace or an
//! error names exactly which WGSL ran. Bind-group layouts are explicit and shared by the kernels
//! of one family (every mat-vec takes the same four bindings), so bind groups built for one type
//! would fit any other.

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
}

/// Which bind-group layout a kernel uses.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Family {
    MatVec,
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
        Pipelines { built: Mutex::new(BTreeMap::new()), matvec_layout, matvec_pipeline_layout }
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
        let mut built = self.pipelines.built.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = built.get(key) {
            return Ok(p.clone());
        }
        let source = source()?;
        let module = self.device().create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(key),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        });
        let layout = match family {
            Family::MatVec => &self.pipelines.matvec_pipeline_layout,
        };
        let pipeline = self.device().create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(key),
            layout: Some(layout),
            module: &module,
            entry_point: Some("main"),
            compilation_options: Default::default(),
            cache: None,
        });
        self.check(&format!("building pipeline `{key}`"))?;
        built.insert(key.to_string(), pipeline.clone());
        Ok(pipeline)
    }

    /// Keys of the pipelines built so far, in order.
    pub fn pipeline_keys(&self) -> Vec<String> {
        self.pipelines.built.lock().unwrap_or_else(|p| p.into_inner()).keys().cloned().collect()
    }
}
