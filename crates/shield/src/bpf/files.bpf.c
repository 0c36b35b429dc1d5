// SPDX-License-Identifier: GPL-2.0
/* The shield's file hooks: on a protected volume's file system, only the service (the FUSE
 * guard's own tasks) may change files, whatever path, mount or descriptor leads there. */
#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "shield.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SHIELD_MAX_VOLUMES);
	__type(key, __u32);
	__type(value, __u8);
} protected_sb SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} service SEC(".maps");

/* 0 when the current task may change files of `sb`, -EPERM when not. */
static __always_inline int refused(struct super_block *sb)
{
	__u32 dev = BPF_CORE_READ(sb, s_dev);
	if (!bpf_map_lookup_elem(&protected_sb, &dev))
		return 0;
	__u32 zero = 0;
	__u32 *tgid = bpf_map_lookup_elem(&service, &zero);
	__u32 me = bpf_get_current_pid_tgid() >> 32;
	if (tgid && *tgid && *tgid == me)
		return 0;
	return -EPERM;
}

SEC("lsm/file_open")
int BPF_PROG(shield_file_open, struct file *file)
{
	if (!(BPF_CORE_READ(file, f_mode) & FMODE_WRITE))
		return 0;
	return refused(BPF_CORE_READ(file, f_inode, i_sb));
}

SEC("lsm/inode_unlink")
int BPF_PROG(shield_inode_unlink, struct inode *dir, struct dentry *dentry)
{
	return refused(BPF_CORE_READ(dir, i_sb));
}
