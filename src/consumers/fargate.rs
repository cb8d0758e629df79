//! The CPU and memory sizes AWS Fargate accepts, from the ECS developer guide's task size table.
//! Pure data and lookups; nothing here calls AWS.

/// Memory sizes (MiB) valid for one CPU size: an inclusive range walked in steps.
struct MemoryRange {
    cpu: u32,
    min: u32,
    max: u32,
    step: u32,
    /// Sizes listed one by one where the table has no regular step.
    listed: &'static [u32],
}

const TABLE: &[MemoryRange] = &[
    MemoryRange {
        cpu: 256,
        min: 512,
        max: 2048,
        step: 0,
        listed: &[512, 1024, 2048],
    },
    MemoryRange {
        cpu: 512,
        min: 1024,
        max: 4096,
        step: 1024,
        listed: &[],
    },
    MemoryRange {
        cpu: 1024,
        min: 2048,
        max: 8192,
        step: 1024,
        listed: &[],
    },
    MemoryRange {
        cpu: 2048,
        min: 4096,
        max: 16384,
        step: 1024,
        listed: &[],
    },
    MemoryRange {
        cpu: 4096,
        min: 8192,
        max: 30720,
        step: 1024,
        listed: &[],
    },
    MemoryRange {
        cpu: 8192,
        min: 16384,
        max: 61440,
        step: 4096,
        listed: &[],
    },
    MemoryRange {
        cpu: 16384,
        min: 32768,
        max: 122880,
        step: 8192,
        listed: &[],
    },
];

/// The CPU sizes Fargate accepts, in CPU units (1024 = 1 vCPU).
pub fn cpu_sizes() -> Vec<u32> {
    TABLE.iter().map(|r| r.cpu).collect()
}

/// The memory sizes Fargate accepts with `cpu`, or `None` when `cpu` itself is not a size.
pub fn memory_sizes(cpu: u32) -> Option<Vec<u32>> {
    let r = TABLE.iter().find(|r| r.cpu == cpu)?;
    if !r.listed.is_empty() {
        return Some(r.listed.to_vec());
    }
    Some((r.min..=r.max).step_by(r.step as usize).collect())
}

/// Whether `cpu`/`memory` is a task size Fargate accepts.
pub fn is_valid(cpu: u32, memory: u32) -> bool {
    memory_sizes(cpu).is_some_and(|m| m.contains(&memory))
}

/// The smallest valid memory size for `cpu`, the default when only `cpu` is set.
pub fn default_memory(cpu: u32) -> Option<u32> {
    memory_sizes(cpu).and_then(|m| m.first().copied())
}

/// A short human description of the sizes valid with `cpu`: `512, 1024 or 2048` or
/// `2048 to 8192 in steps of 1024`.
pub fn describe_memory(cpu: u32) -> Option<String> {
    let r = TABLE.iter().find(|r| r.cpu == cpu)?;
    if !r.listed.is_empty() {
        let listed: Vec<String> = r.listed.iter().map(u32::to_string).collect();
        return Some(one_of(&listed));
    }
    Some(format!("{} to {} in steps of {}", r.min, r.max, r.step))
}

/// `a`, `a or b`, `a, b or c`.
pub fn one_of(items: &[String]) -> String {
    match items.split_last() {
        None => String::new(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

/// The CPU sizes that accept `memory`, to suggest when a pair is wrong.
pub fn cpus_for_memory(memory: u32) -> Vec<u32> {
    TABLE
        .iter()
        .filter(|r| is_valid(r.cpu, memory))
        .map(|r| r.cpu)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_the_documented_pairs() {
        assert!(is_valid(256, 512));
        assert!(is_valid(256, 2048));
        assert!(!is_valid(256, 3072));
        assert!(!is_valid(256, 1536));
        assert!(is_valid(512, 3072));
        assert!(!is_valid(512, 5120));
        assert!(is_valid(1024, 8192));
        assert!(is_valid(4096, 30720));
        assert!(!is_valid(4096, 31744));
        assert!(is_valid(8192, 20480));
        assert!(!is_valid(8192, 17408), "8 vCPU steps by 4 GiB");
        assert!(is_valid(16384, 122880));
        assert!(!is_valid(300, 512));
        assert_eq!(memory_sizes(2048).unwrap().len(), 13);
    }

    #[test]
    fn descriptions() {
        assert_eq!(describe_memory(256).unwrap(), "512, 1024 or 2048");
        assert_eq!(
            describe_memory(512).unwrap(),
            "1024 to 4096 in steps of 1024"
        );
        assert_eq!(cpus_for_memory(4096), vec![512, 1024, 2048]);
        assert_eq!(default_memory(1024), Some(2048));
    }
}
