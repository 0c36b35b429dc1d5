/* The shield's mount hooks (included by shield.bpf.c): nobody but the service mounts a
 * protected volume again, mounts anything on or inside it or its guard, or takes the guard or
 * the hidden backing away. Without them root could hide the backups under another file system
 * (backup programs would then write into that one), mount the device a second time, or unmount
 * the guard so the mount point shows an empty folder; the service heals each of these after the
 * fact, the shield refuses them before.
 * - sb_kern_mount: a mount that yields a protected volume's superblock (the device mounted
 *   again, in any namespace);
 * - sb_mount: mount(2) onto or inside a protected volume, folder or guard (a new mount, a bind,
 *   a move to there, a remount or a propagation change of it);
 * - move_mount: the new mount API attaching there, or moving a guard or backing away (also a
 *   clone of one made with open_tree, attached elsewhere);
 * - sb_umount: unmounting a guard or a backing (umount -l included), or what holds the shield
 *   itself up (its pins' file system, the runtime directory's mount, the keeper's pin).
 * mount(2) with MS_MOVE names its source by a path the hook cannot resolve, and a lazy unmount
 * or a moved parent takes the guard along without a hook of its own: in the namespace the
 * guards are mounted in (the service's, where backup programs see them), nobody else moves a
 * mount with mount(2), pivots the root (sb_pivotroot), unmounts a mount that has mounts
 * beneath it (a non-lazy unmount of one fails with EBUSY anyway), or mounts anything where it
 * would hide mounts beneath (over a guard's parent folder or the mount a guard sits on). Other
 * namespaces (a systemd unit's, a container's) hold copies of the guards and do as they please
 * with them: what they see is theirs alone. */
#ifndef IMAGEGUARD_MOUNTS_BPF_H
#define IMAGEGUARD_MOUNTS_BPF_H

/* Whether the superblock `sb` is a protected volume's or a guard's. */
static __always_inline int mount_shielded(struct super_block *sb)
{
	if (!sb)
		return 0;
	__u32 dev = BPF_CORE_READ(sb, s_dev);
	return bpf_map_lookup_elem(&protected_sb, &dev) || bpf_map_lookup_elem(&guard_sb, &dev);
}

static __always_inline int refused_mount(__u32 op, struct super_block *sb, struct dentry *d)
{
	if (!mount_shielded(sb) || is_service())
		return 0;
	report(op, BPF_CORE_READ(sb, s_dev), d);
	return -EPERM;
}

/* Whether the mount of `sb` rooted at `root` holds the shield up: its pins' bpf file system
 * (unmounted everywhere, it would take the pinned links with it once no service holds them), or a
 * mount whose root is a protected inode (the runtime directory's own mount, which the pins' one
 * sits on, and the pinned keeper namespace). Refused whether a service lives or not. */
static __always_inline int holds_shield(struct super_block *sb, struct dentry *root)
{
	__u32 zero = 0;
	struct shield_service *s = bpf_map_lookup_elem(&service, &zero);
	if (s && s->pins_dev && BPF_CORE_READ(sb, s_dev) == s->pins_dev)
		return 1;
	return protected_inode_of(BPF_CORE_READ(root, d_inode));
}

/* The same for a mount onto the entry `d`, which may also lie in a protected folder. */
static __always_inline int refused_mount_on(struct dentry *d)
{
	struct super_block *sb = BPF_CORE_READ(d, d_sb);
	if ((!mount_shielded(sb) && !in_protected_dir(d)) || is_service())
		return 0;
	report(SHIELD_OP_MOUNT, BPF_CORE_READ(sb, s_dev), d);
	return -EPERM;
}

/* Whether the current task lives in the namespace the guards are mounted in (none: no). */
static __always_inline int in_guards_ns(void)
{
	__u32 zero = 0;
	struct shield_service *s = bpf_map_lookup_elem(&service, &zero);
	if (!s || !s->mount_ns)
		return 0;
	struct task_struct *t = (struct task_struct *)bpf_get_current_task();
	return BPF_CORE_READ(t, nsproxy, mnt_ns, ns.inum) == s->mount_ns;
}

/* The kernel's record of the mount `mnt` (the struct mount it is a member of). */
static __always_inline struct mount *mount_of(struct vfsmount *mnt)
{
	return (void *)mnt - bpf_core_field_offset(struct mount, mnt);
}

/* Whether the mount `mnt` has mounts beneath it (its kernel record's list of children is not
 * empty). */
static __always_inline int has_submounts(struct vfsmount *mnt)
{
	struct mount *m = mount_of(mnt);
	void *head = (void *)m + bpf_core_field_offset(struct mount, mnt_mounts);
	struct list_head *next = 0;
	if (bpf_probe_read_kernel(&next, sizeof(next), head))
		return 0;
	return (void *)next != head;
}

/* How many of a mount's children, and how many parents of each one's mount point, the hiding
 * check follows (a mount point deeper than that below its parent's root is not seen). */
#define SHIELD_MAX_CHILDREN 1024
#define SHIELD_HIDE_DEPTH 16

struct hide_walk {
	struct list_head *pos;
	void *head;
	struct dentry *target;
	struct dentry *root;
	int hides;
};

/* One child mount of the walk: whether its mount point is the target or below it. */
static long hide_walk_step(__u64 i, void *ctx)
{
	struct hide_walk *w = ctx;
	if (!w->pos || (void *)w->pos == w->head)
		return 1;
	struct mount *c = (void *)w->pos - bpf_core_field_offset(struct mount, mnt_child);
	struct dentry *d = BPF_CORE_READ(c, mnt_mountpoint);
	/* A bounded loop (the verifier follows it). */
	for (int j = 0; j < SHIELD_HIDE_DEPTH; j++) {
		if (!d)
			break;
		if (d == w->target) {
			w->hides = 1;
			return 1;
		}
		struct dentry *up = BPF_CORE_READ(d, d_parent);
		if (d == w->root || up == d)
			break;
		d = up;
	}
	struct list_head *next = 0;
	bpf_probe_read_kernel(&next, sizeof(next), w->pos);
	w->pos = next;
	return 0;
}

/* Whether a mount onto `d` of the mount `mnt` would hide mounts beneath it (`d` is the mount
 * point of one of its children, or a folder above one): a guard hidden that way, or the mount
 * a guard sits on, leaves its mount point leading elsewhere (new backups land there). */
static __always_inline int hides_mounts(struct vfsmount *mnt, struct dentry *d)
{
	struct mount *m = mount_of(mnt);
	void *head = (void *)m + bpf_core_field_offset(struct mount, mnt_mounts);
	struct hide_walk w = { .head = head, .target = d, .root = BPF_CORE_READ(mnt, mnt_root) };
	if (bpf_probe_read_kernel(&w.pos, sizeof(w.pos), head))
		return 0;
	bpf_loop(SHIELD_MAX_CHILDREN, hide_walk_step, &w, 0);
	return w.hides;
}

/* Refuse, in the guards' namespace, what would move or take a guard along with another mount. */
static __always_inline int refused_in_guards_ns(struct dentry *d)
{
	if (!in_guards_ns() || is_service())
		return 0;
	report(SHIELD_OP_MOVE_MOUNT, BPF_CORE_READ(d, d_sb, s_dev), d);
	return -EPERM;
}

SEC("lsm/sb_kern_mount")
int BPF_PROG(shield_sb_kern_mount, struct super_block *sb)
{
	__u32 dev = BPF_CORE_READ(sb, s_dev);
	if (!bpf_map_lookup_elem(&protected_sb, &dev) || is_service())
		return 0;
	report(SHIELD_OP_MOUNT, dev, BPF_CORE_READ(sb, s_root));
	return -EPERM;
}

SEC("lsm/sb_mount")
int BPF_PROG(shield_sb_mount, const char *dev_name, const struct path *path, const char *type,
	     unsigned long flags, void *data)
{
	struct dentry *d = BPF_CORE_READ(path, dentry);
	if (flags & MS_MOVE) {
		int r = refused_in_guards_ns(d);
		if (r)
			return r;
	}
	/* A new mount there (not a remount or a propagation change of what is there already). */
	int mounts = !(flags & (MS_REMOUNT | MS_SHARED | MS_PRIVATE | MS_SLAVE | MS_UNBINDABLE));
	if (mounts && in_guards_ns() && hides_mounts(BPF_CORE_READ(path, mnt), d)) {
		int r = refused_in_guards_ns(d);
		if (r)
			return r;
	}
	return refused_mount_on(d);
}

SEC("lsm/sb_pivotroot")
int BPF_PROG(shield_sb_pivotroot, const struct path *old_path, const struct path *new_path)
{
	return refused_in_guards_ns(BPF_CORE_READ(new_path, dentry));
}

SEC("lsm/move_mount")
int BPF_PROG(shield_move_mount, const struct path *from_path, const struct path *to_path)
{
	struct super_block *from = BPF_CORE_READ(from_path, mnt, mnt_sb);
	struct dentry *from_root = BPF_CORE_READ(from_path, mnt, mnt_root);
	if (holds_shield(from, from_root) && !is_service()) {
		report(SHIELD_OP_UNMOUNT, BPF_CORE_READ(from, s_dev), from_root);
		return -EPERM;
	}
	int r = refused_mount(SHIELD_OP_UNMOUNT, from, BPF_CORE_READ(from_path, dentry));
	if (r)
		return r;
	struct dentry *to = BPF_CORE_READ(to_path, dentry);
	if (in_guards_ns() && hides_mounts(BPF_CORE_READ(to_path, mnt), to)) {
		r = refused_in_guards_ns(to);
		if (r)
			return r;
	}
	return refused_mount_on(to);
}

SEC("lsm/sb_umount")
int BPF_PROG(shield_sb_umount, struct vfsmount *mnt, int flags)
{
	struct super_block *sb = BPF_CORE_READ(mnt, mnt_sb);
	struct dentry *root = BPF_CORE_READ(mnt, mnt_root);
	if (holds_shield(sb, root) && !is_service()) {
		report(SHIELD_OP_UNMOUNT, BPF_CORE_READ(sb, s_dev), root);
		return -EPERM;
	}
	if (has_submounts(mnt)) {
		/* Reported by its mount point, as umount names it. */
		int r = refused_in_guards_ns(BPF_CORE_READ(mount_of(mnt), mnt_mountpoint));
		if (r)
			return r;
	}
	return refused_mount(SHIELD_OP_UNMOUNT, sb, root);
}

#endif
