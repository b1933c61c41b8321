//! How the process gets memory from the kernel: small pages, not transparent huge pages.
//!
//! mimalloc (the allocator of the binary and the benches) asks for transparent huge pages
//! on its arenas. citysense frees and reallocates batches of window results, payloads and
//! HTTP bodies all the time; once mimalloc has given freed memory back to the kernel, the
//! next touch of it faults in and clears a whole 2 MiB page. In an end-to-end run a tenth of
//! citysense's CPU went to clearing such pages (`clear_page_rep` under
//! `do_huge_pmd_anonymous_page`); turning huge pages off cut its CPU per reading by 6–8 %
//! (BENCHMARKS.md, tenth session: an A/B in one bench run, 4 KiB faults being more but
//! cheaper). The in-process core does not notice either way.
//!
//! mimalloc also replaces the C library's `malloc` and `free` (its `override` feature), so
//! librdkafka's allocations go to it as well: librdkafka allocates and frees per record (the
//! fetch op, and on `auto` topics the parsed headers). With glibc's allocator for those,
//! citysense used 8 % more CPU per reading end to end (BENCHMARKS.md, thirteenth session).

/// The environment variable with which an operator keeps mimalloc's own choice.
pub const KEEP_HUGE_PAGES_VAR: &str = "MIMALLOC_ALLOW_THP";

/// Turns transparent huge pages off for this process, unless `MIMALLOC_ALLOW_THP` is set
/// (then mimalloc's setting stands). Applies to memory already mapped too: the kernel checks
/// the flag at every fault. Call it first thing in `main`. Returns whether they are off.
pub fn use_small_pages() -> bool {
    if std::env::var_os(KEEP_HUGE_PAGES_VAR).is_some() {
        return false;
    }
    disable_transparent_huge_pages()
}

#[cfg(target_os = "linux")]
fn disable_transparent_huge_pages() -> bool {
    // SAFETY: PR_SET_THP_DISABLE sets a flag of this process; no pointer is passed.
    unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0 }
}

#[cfg(not(target_os = "linux"))]
fn disable_transparent_huge_pages() -> bool {
    false
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use mimalloc as _;

    extern "C" {
        fn mi_is_in_heap_region(p: *const std::ffi::c_void) -> bool;
    }

    #[test]
    fn the_c_librarys_malloc_is_mimallocs() {
        // SAFETY: a plain allocation, checked and freed with the matching `free`.
        unsafe {
            let p = libc::malloc(100);
            assert!(!p.is_null());
            assert!(mi_is_in_heap_region(p), "malloc should be mimalloc's (its `override` feature)");
            libc::free(p);
        }
    }

    #[test]
    fn huge_pages_are_off_after_the_call() {
        if std::env::var_os(super::KEEP_HUGE_PAGES_VAR).is_some() {
            assert!(!super::use_small_pages(), "the operator's choice stands");
            return;
        }
        assert!(super::use_small_pages());
        // SAFETY: PR_GET_THP_DISABLE reads the flag; no pointer is passed.
        assert_eq!(unsafe { libc::prctl(libc::PR_GET_THP_DISABLE, 0, 0, 0, 0) }, 1);
    }
}
