// SPDX-License-Identifier: GPL-2.0
/* The shield's file hooks: on a protected volume's file system, only the service (the FUSE
 * guard's own tasks) may change files, whatever path, mount or descriptor leads there. Every
 * change to a file's data needs it opened for writing (write, truncate through the descriptor,
 * fallocate, a shared writable mapping, copy_file_range and clone into it): file_open refuses
 * that; the names and attributes have their own hooks below. Hooks whose arguments moved
 * between kernels are left out until chosen from the kernel's BTF (inode_setattr, which alone
 * sees utimes: the FUSE guard still refuses it through the guard). */
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
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, SHIELD_MAX_DEVICES);
	__type(key, __u32);
	__type(value, __u8);
} protected_dev SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} service SEC(".maps");

/* Whether the current task is the service. */
static __always_inline int is_service(void)
{
	__u32 zero = 0;
	__u32 *tgid = bpf_map_lookup_elem(&service, &zero);
	__u32 me = bpf_get_current_pid_tgid() >> 32;
	return tgid && *tgid && *tgid == me;
}

/* 0 when the current task may change files of `sb`, -EPERM when not. */
static __always_inline int refused(struct super_block *sb)
{
	__u32 dev = BPF_CORE_READ(sb, s_dev);
	if (!bpf_map_lookup_elem(&protected_sb, &dev) || is_service())
		return 0;
	return -EPERM;
}

/* Opening a protected volume's block device (or one beneath it) for writing goes under the file
 * system: refused to all but the service (dd onto the device, debugfs -w, mkfs). */
static __always_inline int refused_device(struct inode *inode)
{
	if ((BPF_CORE_READ(inode, i_mode) & S_IFMT) != S_IFBLK)
		return 0;
	__u32 dev = BPF_CORE_READ(inode, i_rdev);
	if (!bpf_map_lookup_elem(&protected_sb, &dev) && !bpf_map_lookup_elem(&protected_dev, &dev))
		return 0;
	return is_service() ? 0 : -EPERM;
}

SEC("lsm/file_open")
int BPF_PROG(shield_file_open, struct file *file)
{
	if (!(BPF_CORE_READ(file, f_mode) & FMODE_WRITE))
		return 0;
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	int r = refused_device(inode);
	return r ? r : refused(BPF_CORE_READ(inode, i_sb));
}

SEC("lsm/inode_unlink")
int BPF_PROG(shield_inode_unlink, struct inode *dir, struct dentry *dentry)
{
	return refused(BPF_CORE_READ(dir, i_sb));
}

SEC("lsm/inode_rmdir")
int BPF_PROG(shield_inode_rmdir, struct inode *dir, struct dentry *dentry)
{
	return refused(BPF_CORE_READ(dir, i_sb));
}

/* A rename cannot leave its file system: the source folder's decides. */
SEC("lsm/inode_rename")
int BPF_PROG(shield_inode_rename, struct inode *old_dir, struct dentry *old_dentry,
	     struct inode *new_dir, struct dentry *new_dentry)
{
	return refused(BPF_CORE_READ(old_dir, i_sb));
}

SEC("lsm/inode_link")
int BPF_PROG(shield_inode_link, struct dentry *old_dentry, struct inode *dir,
	     struct dentry *new_dentry)
{
	return refused(BPF_CORE_READ(dir, i_sb));
}

SEC("lsm/inode_create")
int BPF_PROG(shield_inode_create, struct inode *dir, struct dentry *dentry, int mode)
{
	return refused(BPF_CORE_READ(dir, i_sb));
}

SEC("lsm/inode_mkdir")
int BPF_PROG(shield_inode_mkdir, struct inode *dir, struct dentry *dentry, int mode)
{
	return refused(BPF_CORE_READ(dir, i_sb));
}

SEC("lsm/inode_mknod")
int BPF_PROG(shield_inode_mknod, struct inode *dir, struct dentry *dentry, int mode,
	     unsigned int dev)
{
	return refused(BPF_CORE_READ(dir, i_sb));
}

SEC("lsm/inode_symlink")
int BPF_PROG(shield_inode_symlink, struct inode *dir, struct dentry *dentry, const char *name)
{
	return refused(BPF_CORE_READ(dir, i_sb));
}

/* The first argument is the mount's user namespace (6.1) or idmap (6.3 and later): the dentry
 * is the second either way. */
SEC("lsm/inode_setxattr")
int BPF_PROG(shield_inode_setxattr, void *idmap, struct dentry *dentry)
{
	return refused(BPF_CORE_READ(dentry, d_sb));
}

SEC("lsm/inode_removexattr")
int BPF_PROG(shield_inode_removexattr, void *idmap, struct dentry *dentry)
{
	return refused(BPF_CORE_READ(dentry, d_sb));
}

SEC("lsm/path_truncate")
int BPF_PROG(shield_path_truncate, const struct path *path)
{
	return refused(BPF_CORE_READ(path, dentry, d_sb));
}

SEC("lsm/path_chmod")
int BPF_PROG(shield_path_chmod, const struct path *path, int mode)
{
	return refused(BPF_CORE_READ(path, dentry, d_sb));
}

SEC("lsm/path_chown")
int BPF_PROG(shield_path_chown, const struct path *path)
{
	return refused(BPF_CORE_READ(path, dentry, d_sb));
}
