//! Keeping freed memory in the process, so that a training step does not page-fault its way
//! through fresh memory every time.
//!
//! A training step allocates and frees the same tensors every time: activations, gradients,
//! candle's `zeros_like` gradient accumulators. glibc's allocator gives blocks of 128 KiB and
//! more back to the operating system when they are freed (`mmap` / heap trimming), so the next
//! step's tensors of the same size land on fresh pages, and every first write to a page is a
//! page fault; in a process with two running threads each fault also flushes the other core's
//! TLB by an interrupt. Measured on a two-core machine (`cargo bench -p dirkit-nn --bench
//! head_step`, the regression-head MLP at batch 256, whose hidden activations are 256 KiB): a step
//! takes ~665 µs on one thread and 0.35–1.6 ms on two with glibc's defaults (its adaptive
//! threshold decides which), ~275 µs on either with freed memory kept.
//!
//! [`keep_freed_memory`] sets glibc's thresholds once for the process: blocks up to 32 MiB (the
//! most glibc allows) come from the heap, and the heap is trimmed only when 512 MiB at its top are
//! free. The cost is that memory freed by a run stays with the process until it exits — right for
//! a training or evaluation process, which reuses it every step. The same is available without
//! code through the environment: `MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=536870912`.

/// Blocks below this many bytes are taken from the heap, not mapped apiece (glibc's maximum).
pub const MMAP_THRESHOLD: usize = 32 << 20;

/// Free bytes at the top of the heap before it is given back to the operating system.
pub const TRIM_THRESHOLD: usize = 512 << 20;

/// Keeps freed memory in the process (see the [module documentation](self)): call it once at
/// the start of a training or evaluation program. Returns whether the allocator took the
/// settings: `true` with glibc on Linux, `false` elsewhere (other allocators do not hand memory
/// back this eagerly, or have their own settings). Calling it again is harmless.
pub fn keep_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes the allocator's thresholds; it is thread-safe and takes
        // plain integers.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD as libc::c_int) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allocator_takes_the_settings_on_glibc() {
        let taken = keep_freed_memory();
        assert_eq!(taken, cfg!(all(target_os = "linux", target_env = "gnu")));
        // Allocation still works on both sides of the thresholds.
        let small = vec![1u8; 256 << 10];
        let large = vec![2u8; 40 << 20];
        assert_eq!(small[1000] as usize + large[1 << 25] as usize, 3);
        assert_eq!(keep_freed_memory(), taken, "idempotent");
    }
}
