//! The bandwidth probe (`shaders/stream_read.wgsl`) reads every word of its buffer exactly once:
//! its per-workgroup XORs equal the CPU twin's, at a size that is not a multiple of the grid.

use aether_core::gpu::{GpuOptions, StreamRead, stream_read_cpu};
use aether_tests::gpu::{read_all_u32, test_gpu};

#[test]
fn every_word_is_read_once() {
    let Some(gpu) = test_gpu(GpuOptions::default()) else { return };
    let fill = |i: usize| (i as u32).wrapping_mul(0x9E37_79B9) ^ (i as u32 >> 7);
    // 1 MiB + 48 bytes over 7 workgroups: the last lanes get one vec4 fewer than the first.
    let bytes = (1 << 20) + 48;
    let probe = StreamRead::new(&gpu, bytes, 7, fill).unwrap();
    assert_eq!(probe.bytes(), bytes);
    let mut enc = gpu.device().create_command_encoder(&Default::default());
    {
        let mut pass = enc.begin_compute_pass(&Default::default());
        probe.encode(&mut pass);
    }
    gpu.submit(enc, "stream read").unwrap();
    let src: Vec<u32> = (0..bytes as usize / 4).map(fill).collect();
    assert_eq!(read_all_u32(&gpu, probe.out()), stream_read_cpu(&src, probe.groups()));
}
