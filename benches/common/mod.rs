//! A generated build context shared by the benchmarks (each uses part of it).
#![allow(dead_code)]

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::Path;

/// Write `mib` MiB of pseudo-random bytes (xorshift from `state`, which it advances) to `w`, 1 MiB
/// at a time.
pub fn fill_random(w: &mut impl Write, mib: u64, state: &mut u64) {
    let mut chunk = vec![0u8; 1 << 20];
    for _ in 0..mib {
        for word in chunk.chunks_exact_mut(8) {
            *state ^= *state << 13;
            *state ^= *state >> 7;
            *state ^= *state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        w.write_all(&chunk).unwrap();
    }
}

/// Write `mib` MiB of pseudo-random bytes across large and small files, 1 MiB at a time.
pub fn generate(root: &Path, mib: u64) {
    fs::write(root.join("Dockerfile"), "FROM scratch\nCOPY . /data\n").unwrap();
    fs::write(root.join(".dockerignore"), "ignored\n").unwrap();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let big_files = 16u64;
    let per_file = mib / big_files;
    for f in 0..big_files {
        let dir = root.join(format!("data/part-{:02}", f % 4));
        fs::create_dir_all(&dir).unwrap();
        let mut w = BufWriter::new(File::create(dir.join(format!("blob-{f:02}.bin"))).unwrap());
        fill_random(&mut w, per_file, &mut state);
    }
    let small = root.join("src");
    fs::create_dir_all(&small).unwrap();
    for i in 0..2000 {
        fs::write(
            small.join(format!("module_{i:04}.py")),
            format!("VALUE = {i}\n"),
        )
        .unwrap();
    }
}
