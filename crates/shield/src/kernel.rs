//! What the shield needs of the running kernel, and how it names devices.

/// The active LSMs, as the kernel lists them.
pub fn active_lsms() -> String {
    std::fs::read_to_string("/sys/kernel/security/lsm").unwrap_or_default()
}

/// Whether `bpf` is among the active LSMs.
pub fn bpf_lsm_active() -> bool {
    active_lsms().split(',').any(|l| l.trim() == "bpf")
}

/// A device number as the kernel encodes it inside (`s_dev`, `i_rdev`: major << 20 | minor).
pub fn kernel_dev(major: u32, minor: u32) -> u32 {
    (major << 20) | minor
}

#[cfg(test)]
mod tests {
    #[test]
    fn kernel_devices_put_the_major_above_twenty_bits_of_minor() {
        assert_eq!(super::kernel_dev(7, 3), 0x700003);
        assert_eq!(super::kernel_dev(259, 0x1_0000), (259 << 20) | 0x1_0000);
    }
}
