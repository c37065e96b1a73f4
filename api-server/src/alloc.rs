//! The process's allocator: mimalloc (glibc's malloc was an eighth of the request path
//! in profiles), asked for what each allocation needs.
//!
//! `mimalloc::MiMalloc` hands every allocation to `mi_malloc_aligned`, whatever its
//! alignment. In mimalloc 3 that call's fast path serves blocks of up to 1 KiB only;
//! anything larger that is not a power of two, even at the 8-byte alignment of nearly
//! every Rust type, goes to the over-allocating path that alignments beyond what the
//! allocator guarantees need. A `GET /api/v1/me` made eleven such allocations (its boxed
//! futures, header maps, tables), and the aligned entry point checked alignment on
//! every other one. Every mimalloc block is aligned to a word at least, so an
//! allocation that asks no more than that takes plain `mi_malloc`; only larger
//! alignments use the aligned calls.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys::{mi_free, mi_malloc, mi_malloc_aligned, mi_realloc, mi_realloc_aligned, mi_zalloc, mi_zalloc_aligned};

/// Alignment of every block mimalloc hands out.
const GUARANTEED: usize = std::mem::size_of::<usize>();

/// mimalloc, as `#[global_allocator]` of the server and the benchmark.
pub struct Allocator;

// SAFETY: each method passes the layout's size (and, beyond `GUARANTEED`, its
// alignment) to the mimalloc call that honours it, and frees with `mi_free`, which
// takes blocks from any of them.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: plain FFI calls; a null return is passed on as allocation failure.
        unsafe {
            if layout.align() <= GUARANTEED {
                mi_malloc(layout.size()).cast()
            } else {
                mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `alloc`.
        unsafe {
            if layout.align() <= GUARANTEED {
                mi_zalloc(layout.size()).cast()
            } else {
                mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (the caller's contract).
        unsafe { mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout` (the caller's contract);
        // the new block keeps the alignment the old one was asked for.
        unsafe {
            if layout.align() <= GUARANTEED {
                mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_aligned_writable_and_keep_their_bytes_when_resized() {
        let sizes = [1usize, 7, 8, 24, 100, 1000, 1024, 1025, 1500, 4096, 5000, 70_000];
        for align in [1usize, 2, 4, 8, 16, 32, 64, 4096] {
            for &size in &sizes {
                let layout = Layout::from_size_align(size, align).expect("a valid layout");
                // SAFETY: non-zero sizes; each block is freed with its layout below.
                unsafe {
                    let p = Allocator.alloc(layout);
                    assert!(!p.is_null());
                    assert_eq!(p as usize % align, 0, "size {size}, align {align}");
                    for i in 0..size {
                        p.add(i).write((i % 251) as u8);
                    }
                    let grown = Allocator.realloc(p, layout, size * 3);
                    assert!(!grown.is_null());
                    assert_eq!(grown as usize % align, 0, "grown: size {size}, align {align}");
                    for i in 0..size {
                        assert_eq!(grown.add(i).read(), (i % 251) as u8, "byte {i} of {size} after realloc");
                    }
                    Allocator.dealloc(grown, Layout::from_size_align(size * 3, align).expect("a valid layout"));

                    let z = Allocator.alloc_zeroed(layout);
                    assert_eq!(z as usize % align, 0);
                    assert!((0..size).all(|i| z.add(i).read() == 0), "zeroed: size {size}, align {align}");
                    Allocator.dealloc(z, layout);
                }
            }
        }
    }
}
