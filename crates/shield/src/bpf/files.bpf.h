// SPDX-License-Identifier: GPL-2.0
/* The shield's file hooks (included by shield.bpf.c): on a protected volume's file system, only the service (the FUSE
 * guard's own tasks) may change files, whatever path, mount or descriptor leads there. Every
 * change to a file's data needs it opened for writing (write, truncate through the descriptor,
 * fallocate, a shared writable mapping, copy_file_range and clone into it): file_open refuses
 * that; the names and attributes have their own hooks below. Hooks whose arguments moved
 * between kernels are left out until chosen from the kernel's BTF (inode_setattr, which alone
 * sees utimes: the FUSE guard still refuses it through the guard). */
#ifndef IMAGEGUARD_FILES_BPF_H
#define IMAGEGUARD_FILES_BPF_H

/* Whether the file `inode` (NULL: none) is one of the protected inodes. */
static __always_inline int protected_inode_of(struct inode *inode)
{
	if (!inode)
		return 0;
	struct shield_inode key = {
		.dev = BPF_CORE_READ(inode, i_sb, s_dev),
		.ino = BPF_CORE_READ(inode, i_ino),
	};
	return bpf_map_lookup_elem(&protected_inode, &key) != 0;
}

/* Whether the entry `d` lies in a held folder (its parent or grandparent is one). */
static __always_inline int in_held_dir(struct dentry *d)
{
	__u32 zero = 0;
	struct shield_service *s = bpf_map_lookup_elem(&service, &zero);
	if (!s || !s->held_dirs)
		return 0;
	struct dentry *p = BPF_CORE_READ(d, d_parent);
#pragma unroll
	for (int i = 0; i < 2; i++) {
		struct inode *in = BPF_CORE_READ(p, d_inode);
		struct shield_inode key = {
			.dev = BPF_CORE_READ(in, i_sb, s_dev),
			.ino = BPF_CORE_READ(in, i_ino),
		};
		if (bpf_map_lookup_elem(&held_dir, &key))
			return 1;
		struct dentry *up = BPF_CORE_READ(p, d_parent);
		if (up == p)
			return 0;
		p = up;
	}
	return 0;
}

/* 0 when the current task may change the entry `d` of `sb` (its file `inode`, NULL for a name
 * still free); else -EPERM, reported as `op`. */
static __always_inline int refused_inode(__u32 op, struct super_block *sb, struct dentry *d,
					 struct inode *inode)
{
	__u32 dev = BPF_CORE_READ(sb, s_dev);
	if (!bpf_map_lookup_elem(&protected_sb, &dev) && !protected_inode_of(inode) &&
	    !in_held_dir(d))
		return 0;
	if (is_service())
		return 0;
	report(op, dev, d);
	return -EPERM;
}

/* The same for the entry `d`, whose file (if any) is its own. */
static __always_inline int refused(__u32 op, struct super_block *sb, struct dentry *d)
{
	return refused_inode(op, sb, d, BPF_CORE_READ(d, d_inode));
}

/* Whether the device file `inode` is a protected volume's block device or a device registered
 * beneath one (protected_dev: block devices by number; character devices, such as the SCSI
 * generic and NVMe generic nodes of its disk, by number with SHIELD_CHAR_DEV set). */
static __always_inline int shielded_device(struct inode *inode)
{
	__u16 fmt = BPF_CORE_READ(inode, i_mode) & S_IFMT;
	__u32 dev = BPF_CORE_READ(inode, i_rdev);
	if (fmt == S_IFBLK)
		return bpf_map_lookup_elem(&protected_sb, &dev) || bpf_map_lookup_elem(&protected_dev, &dev);
	if (fmt != S_IFCHR)
		return 0;
	__u32 key = dev | SHIELD_CHAR_DEV;
	return bpf_map_lookup_elem(&protected_dev, &key) != 0;
}

/* Opening such a device for writing goes under the file system: refused to all but the service
 * (dd onto the device, debugfs -w, mkfs, a SCSI command written to /dev/sgN). */
static __always_inline int refused_device(struct inode *inode, struct dentry *d)
{
	if (!shielded_device(inode) || is_service())
		return 0;
	report(SHIELD_OP_OPEN_DEVICE, BPF_CORE_READ(inode, i_rdev), d);
	return -EPERM;
}

/* Ioctls that write a device without opening it for writing: SCSI generic (SG_IO works on a
 * descriptor opened read-only for a task with CAP_SYS_RAWIO, as root has) and NVMe passthrough. */
#define SG_IO 0x2285
static __always_inline int writes_device(unsigned int cmd)
{
	if (cmd == SG_IO)
		return 1;
	/* NVME_IOCTL_*: type 'N', numbers 0x41 (admin) to 0x48 (io64). */
	__u32 type = (cmd >> 8) & 0xff, nr = cmd & 0xff;
	return type == 'N' && nr >= 0x41 && nr <= 0x48;
}

SEC("lsm/file_ioctl")
int BPF_PROG(shield_file_ioctl, struct file *file, unsigned int cmd, unsigned long arg)
{
	if (!writes_device(cmd))
		return 0;
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	if (!shielded_device(inode) || is_service())
		return 0;
	report(SHIELD_OP_OPEN_DEVICE, BPF_CORE_READ(inode, i_rdev), BPF_CORE_READ(file, f_path.dentry));
	return -EPERM;
}

SEC("lsm/file_open")
int BPF_PROG(shield_file_open, struct file *file)
{
	if (!(BPF_CORE_READ(file, f_mode) & FMODE_WRITE))
		return 0;
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	struct dentry *d = BPF_CORE_READ(file, f_path.dentry);
	int r = refused_device(inode, d);
	return r ? r : refused_inode(SHIELD_OP_OPEN_WRITE, BPF_CORE_READ(inode, i_sb), d, inode);
}

SEC("lsm/inode_unlink")
int BPF_PROG(shield_inode_unlink, struct inode *dir, struct dentry *dentry)
{
	return refused(SHIELD_OP_UNLINK, BPF_CORE_READ(dir, i_sb), dentry);
}

SEC("lsm/inode_rmdir")
int BPF_PROG(shield_inode_rmdir, struct inode *dir, struct dentry *dentry)
{
	return refused(SHIELD_OP_RMDIR, BPF_CORE_READ(dir, i_sb), dentry);
}

/* A rename cannot leave its file system; its source and a file it would replace decide. */
SEC("lsm/inode_rename")
int BPF_PROG(shield_inode_rename, struct inode *old_dir, struct dentry *old_dentry,
	     struct inode *new_dir, struct dentry *new_dentry)
{
	int r = refused(SHIELD_OP_RENAME, BPF_CORE_READ(old_dir, i_sb), old_dentry);
	/* Renaming over a protected file replaces it (its name then leads elsewhere). */
	return r ? r : refused(SHIELD_OP_RENAME, BPF_CORE_READ(new_dir, i_sb), new_dentry);
}

SEC("lsm/inode_link")
int BPF_PROG(shield_inode_link, struct dentry *old_dentry, struct inode *dir,
	     struct dentry *new_dentry)
{
	return refused(SHIELD_OP_LINK, BPF_CORE_READ(dir, i_sb), old_dentry);
}

SEC("lsm/inode_create")
int BPF_PROG(shield_inode_create, struct inode *dir, struct dentry *dentry, int mode)
{
	return refused(SHIELD_OP_CREATE, BPF_CORE_READ(dir, i_sb), dentry);
}

SEC("lsm/inode_mkdir")
int BPF_PROG(shield_inode_mkdir, struct inode *dir, struct dentry *dentry, int mode)
{
	return refused(SHIELD_OP_CREATE, BPF_CORE_READ(dir, i_sb), dentry);
}

SEC("lsm/inode_mknod")
int BPF_PROG(shield_inode_mknod, struct inode *dir, struct dentry *dentry, int mode,
	     unsigned int dev)
{
	return refused(SHIELD_OP_CREATE, BPF_CORE_READ(dir, i_sb), dentry);
}

SEC("lsm/inode_symlink")
int BPF_PROG(shield_inode_symlink, struct inode *dir, struct dentry *dentry, const char *name)
{
	return refused(SHIELD_OP_CREATE, BPF_CORE_READ(dir, i_sb), dentry);
}

/* The first argument is the mount's user namespace (6.1) or idmap (6.3 and later): the dentry
 * is the second either way. */
SEC("lsm/inode_setxattr")
int BPF_PROG(shield_inode_setxattr, void *idmap, struct dentry *dentry)
{
	return refused(SHIELD_OP_SETXATTR, BPF_CORE_READ(dentry, d_sb), dentry);
}

SEC("lsm/inode_removexattr")
int BPF_PROG(shield_inode_removexattr, void *idmap, struct dentry *dentry)
{
	return refused(SHIELD_OP_REMOVEXATTR, BPF_CORE_READ(dentry, d_sb), dentry);
}

SEC("lsm/path_truncate")
int BPF_PROG(shield_path_truncate, const struct path *path)
{
	return refused(SHIELD_OP_TRUNCATE, BPF_CORE_READ(path, dentry, d_sb), BPF_CORE_READ(path, dentry));
}

SEC("lsm/path_chmod")
int BPF_PROG(shield_path_chmod, const struct path *path, int mode)
{
	return refused(SHIELD_OP_CHMOD, BPF_CORE_READ(path, dentry, d_sb), BPF_CORE_READ(path, dentry));
}

SEC("lsm/path_chown")
int BPF_PROG(shield_path_chown, const struct path *path)
{
	return refused(SHIELD_OP_CHOWN, BPF_CORE_READ(path, dentry, d_sb), BPF_CORE_READ(path, dentry));
}

#endif
