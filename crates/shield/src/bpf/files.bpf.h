// SPDX-License-Identifier: GPL-2.0
/* The shield's file hooks (included by shield.bpf.c): on a protected volume's file system, in a
 * protected folder of a larger one, and on a protected volume's image file, only the service
 * (the FUSE guard's own tasks) may change files, whatever path, mount or descriptor leads there. Every
 * change to a file's data needs it opened for writing (write, truncate through the descriptor,
 * fallocate, a shared writable mapping, copy_file_range and clone into it): file_open refuses
 * that; the names and attributes have their own hooks below. */
#ifndef IMAGEGUARD_FILES_BPF_H
#define IMAGEGUARD_FILES_BPF_H

/* Whether the file `inode` (NULL: none) is one of the protected inodes. */
static __always_inline int protected_inode_of(struct inode *inode)
{
	if (!inode)
		return 0;
	struct shield_inode key = {
		.dev = inode_dev(inode),
		.ino = BPF_CORE_READ(inode, i_ino),
	};
	return bpf_map_lookup_elem(&protected_inode, &key) != 0;
}

/* One step of the walk from an entry up through its parents (a bpf_loop callback). */
struct dir_walk {
	struct dentry *d;
	/* 1: a protected folder was met, or the walk could not reach the root (inside). */
	int inside;
	int done;
};

static long dir_walk_step(__u64 i, void *ctx)
{
	struct dir_walk *w = ctx;
	struct dentry *d = w->d;
	struct inode *in = BPF_CORE_READ(d, d_inode);
	if (in) {
		struct shield_inode key = {
			.dev = inode_dev(in),
			.ino = BPF_CORE_READ(in, i_ino),
		};
		if (bpf_map_lookup_elem(&protected_dir, &key)) {
			w->inside = 1;
			w->done = 1;
			return 1;
		}
	}
	struct dentry *up = BPF_CORE_READ(d, d_parent);
	if (!up || up == d) {
		/* The top: its file system's root, or a disconnected entry whose place is unknown. */
		w->inside = d != BPF_CORE_READ(d, d_sb, s_root);
		w->done = 1;
		return 1;
	}
	w->d = up;
	return 0;
}

/* Whether the entry `d` (its file, or a name still free) is in a protected folder: the folder
 * itself or anything below it, at any depth (protected_dir). */
static __always_inline int in_protected_dir(struct dentry *d)
{
	if (!d)
		return 0;
	__u32 dev = BPF_CORE_READ(d, d_sb, s_dev);
	if (!bpf_map_lookup_elem(&dir_sb, &dev))
		return 0;
	struct dir_walk w = { .d = d };
	bpf_loop(SHIELD_MAX_DEPTH, dir_walk_step, &w, 0);
	/* Deeper than the walk goes: inside. */
	return w.inside || !w.done;
}

/* Whether the entry `d` is a name held in its folder (held_name). */
static __always_inline int held_name_at(struct dentry *d)
{
	__u32 zero = 0;
	struct shield_service *s = bpf_map_lookup_elem(&service, &zero);
	if (!s || !s->held_names || !d)
		return 0;
	struct inode *dir = BPF_CORE_READ(d, d_parent, d_inode);
	struct shield_name key;
	__builtin_memset(&key, 0, sizeof(key));
	key.dev = inode_dev(dir);
	key.ino = BPF_CORE_READ(dir, i_ino);
	bpf_probe_read_kernel_str(key.name, sizeof(key.name), BPF_CORE_READ(d, d_name.name));
	return bpf_map_lookup_elem(&held_name, &key) != 0;
}

/* 0 when the current task may change the entry `d` of `sb` (its file `inode`, NULL for a name
 * still free); else -EPERM, reported as `op`. */
static __always_inline int refused_inode(__u32 op, struct super_block *sb, struct dentry *d,
					 struct inode *inode)
{
	__u32 dev = BPF_CORE_READ(sb, s_dev);
	if (!bpf_map_lookup_elem(&protected_sb, &dev) && !protected_inode_of(inode) &&
	    !in_protected_dir(d) && !held_name_at(d))
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

/* btrfs deletes a subvolume, every file in it, through an ioctl on a folder opened read-only
 * (SNAP_DESTROY by name, SNAP_DESTROY_V2 by name or by id), with none of the hooks above on
 * the way; root may delete one that is mounted elsewhere, the one mounted as a protected
 * volume's or folder's file system included. */
#define BTRFS_IOCTL_MAGIC 0x94
static __always_inline int destroys_subvolume(unsigned int cmd)
{
	__u32 type = (cmd >> 8) & 0xff, nr = cmd & 0xff;
	return type == BTRFS_IOCTL_MAGIC && (nr == 15 || nr == 63);
}

/* Ioctls that change a file's flags (chattr: FS_IOC_SETFLAGS, its 32-bit form, and
 * FS_IOC_FSSETXATTR) with no open for writing and no setattr hook on the way. */
static __always_inline int sets_file_flags(unsigned int cmd)
{
	return cmd == 0x40086602 || cmd == 0x40046602 || cmd == 0x401c5820;
}

SEC("lsm/file_ioctl")
int BPF_PROG(shield_file_ioctl, struct file *file, unsigned int cmd, unsigned long arg)
{
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	struct dentry *d = BPF_CORE_READ(file, f_path.dentry);
	if (sets_file_flags(cmd))
		return refused_inode(SHIELD_OP_SETATTR, BPF_CORE_READ(inode, i_sb), d, inode);
	if (destroys_subvolume(cmd)) {
		/* Which subvolume it names cannot be told here (a name looked up later, or an id):
		 * on a file system holding a protected volume, folder or image file, none. */
		__u32 dev = BPF_CORE_READ(inode, i_sb, s_dev);
		if ((!bpf_map_lookup_elem(&protected_sb, &dev) && !bpf_map_lookup_elem(&dir_sb, &dev)) ||
		    is_service())
			return 0;
		report(SHIELD_OP_SUBVOLUME_DELETE, dev, d);
		return -EPERM;
	}
	if (!writes_device(cmd))
		return 0;
	if (!shielded_device(inode) || is_service())
		return 0;
	report(SHIELD_OP_OPEN_DEVICE, BPF_CORE_READ(inode, i_rdev), d);
	return -EPERM;
}

/* If `d` is /proc/PID/environ (or /proc/PID/task/TID/environ), note for the current thread
 * that it opens PID's environment (see environ_open). */
static __always_inline void note_environ_open(struct dentry *d)
{
	if (BPF_CORE_READ(d, d_sb, s_magic) != PROC_SUPER_MAGIC)
		return;
	char name[8] = {};
	bpf_probe_read_kernel_str(name, sizeof(name), BPF_CORE_READ(d, d_name.name));
	if (name[0] != 'e' || name[1] != 'n' || name[2] != 'v' || name[3] != 'i' || name[4] != 'r' ||
	    name[5] != 'o' || name[6] != 'n' || name[7] != 0)
		return;
	char digits[12] = {};
	bpf_probe_read_kernel_str(digits, sizeof(digits), BPF_CORE_READ(d, d_parent, d_name.name));
	__u32 pid = 0;
#pragma unroll
	for (int i = 0; i < 11; i++) {
		char c = digits[i];
		if (c == 0)
			break;
		if (c < '0' || c > '9')
			return;
		pid = pid * 10 + (c - '0');
	}
	__u64 id = bpf_get_current_pid_tgid();
	bpf_map_update_elem(&environ_open, &id, &pid, BPF_ANY);
}

SEC("lsm/file_open")
int BPF_PROG(shield_file_open, struct file *file)
{
	if (!(BPF_CORE_READ(file, f_mode) & FMODE_WRITE)) {
		note_environ_open(BPF_CORE_READ(file, f_path.dentry));
		module_opened(file);
		return 0;
	}
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	struct dentry *d = BPF_CORE_READ(file, f_path.dentry);
	int r = refused_device(inode, d);
	r = r ? r : refused_inode(SHIELD_OP_OPEN_WRITE, BPF_CORE_READ(inode, i_sb), d, inode);
	return r ? r : policy_refused_open(file);
}

SEC("lsm/inode_unlink")
int BPF_PROG(shield_inode_unlink, struct inode *dir, struct dentry *dentry)
{
	struct super_block *sb = BPF_CORE_READ(dir, i_sb);
	int r = refused(SHIELD_OP_UNLINK, sb, dentry);
	return r ? r : policy_refused_entry(POLICY_OP_DELETE, sb, dentry);
}

SEC("lsm/inode_rmdir")
int BPF_PROG(shield_inode_rmdir, struct inode *dir, struct dentry *dentry)
{
	struct super_block *sb = BPF_CORE_READ(dir, i_sb);
	int r = refused(SHIELD_OP_RMDIR, sb, dentry);
	return r ? r : policy_refused_entry(POLICY_OP_REMOVE_DIRECTORY, sb, dentry);
}

/* A rename cannot leave its file system; its source and a file it would replace decide. */
SEC("lsm/inode_rename")
int BPF_PROG(shield_inode_rename, struct inode *old_dir, struct dentry *old_dentry,
	     struct inode *new_dir, struct dentry *new_dentry)
{
	struct super_block *sb = BPF_CORE_READ(old_dir, i_sb);
	int r = refused(SHIELD_OP_RENAME, sb, old_dentry);
	/* Renaming over a protected file replaces it (its name then leads elsewhere). */
	r = r ? r : refused(SHIELD_OP_RENAME, sb, new_dentry);
	/* The policy: moving the entry (within its folder, or out of it), and replacing what the
	 * new name holds (an exchange comes as two renames, each way). */
	r = r ? r : policy_refused_entry(old_dir == new_dir ? POLICY_OP_RENAME_IN_FOLDER :
								  POLICY_OP_RENAME,
					 sb, old_dentry);
	return r ? r : policy_refused_entry(POLICY_OP_REPLACE, sb, new_dentry);
}

SEC("lsm/inode_link")
int BPF_PROG(shield_inode_link, struct dentry *old_dentry, struct inode *dir,
	     struct dentry *new_dentry)
{
	struct super_block *sb = BPF_CORE_READ(dir, i_sb);
	int r = refused(SHIELD_OP_LINK, sb, old_dentry);
	/* A link made into a protected folder adds a name there. */
	r = r ? r : refused(SHIELD_OP_LINK, sb, new_dentry);
	return r ? r : policy_refused_entry(POLICY_OP_HARD_LINK, sb, old_dentry);
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
	struct super_block *sb = BPF_CORE_READ(dentry, d_sb);
	int r = refused(SHIELD_OP_SETXATTR, sb, dentry);
	return r ? r : policy_refused_entry(POLICY_OP_SET_XATTR, sb, dentry);
}

SEC("lsm/inode_removexattr")
int BPF_PROG(shield_inode_removexattr, void *idmap, struct dentry *dentry)
{
	struct super_block *sb = BPF_CORE_READ(dentry, d_sb);
	int r = refused(SHIELD_OP_REMOVEXATTR, sb, dentry);
	return r ? r : policy_refused_entry(POLICY_OP_REMOVE_XATTR, sb, dentry);
}

/* Whatever else changes a file's attributes (its times above all: utimes, touch -d; modes,
 * owners and sizes are refused before, by the path hooks). The hook took the mount's idmap
 * first from 6.8 on: one program per form, and the loader attaches the one this kernel's BTF
 * declares. */
static __always_inline int setattr_refused(struct dentry *dentry, struct iattr *attr)
{
	struct super_block *sb = BPF_CORE_READ(dentry, d_sb);
	int r = refused(SHIELD_OP_SETATTR, sb, dentry);
	/* A new size is a truncation (as the FUSE guard maps SETATTR), the rest attributes. */
	__u32 op = (BPF_CORE_READ(attr, ia_valid) & ATTR_SIZE) ? POLICY_OP_TRUNCATE :
								   POLICY_OP_SET_ATTRIBUTES;
	return r ? r : policy_refused_entry(op, sb, dentry);
}

SEC("lsm/inode_setattr")
int BPF_PROG(shield_inode_setattr, struct dentry *dentry, struct iattr *attr)
{
	return setattr_refused(dentry, attr);
}

SEC("lsm/inode_setattr")
int BPF_PROG(shield_inode_setattr_idmap, void *idmap, struct dentry *dentry, struct iattr *attr)
{
	return setattr_refused(dentry, attr);
}

SEC("lsm/path_truncate")
int BPF_PROG(shield_path_truncate, const struct path *path)
{
	struct dentry *d = BPF_CORE_READ(path, dentry);
	struct super_block *sb = BPF_CORE_READ(d, d_sb);
	int r = refused(SHIELD_OP_TRUNCATE, sb, d);
	return r ? r : policy_refused_entry(POLICY_OP_TRUNCATE, sb, d);
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
