// SPDX-License-Identifier: GPL-2.0
/* The kernel backend's decision (included by shield.bpf.c after the certification, before the
 * file hooks that call it): on a volume the kernel decides (kernel_volume), an operation on a
 * marked entry (backup_mark: its class, as the policy core classified it) is looked up in the
 * verdict table the policy core compiled (verdicts, imageguard_policy::compiled::verdicts), by
 * who asks (certified or not), the operation, the class and the volume's circumstances. No rule
 * is written here: the table holds what `decide` says for every case. */
#ifndef IMAGEGUARD_DECIDE_BPF_H
#define IMAGEGUARD_DECIDE_BPF_H

/* The table index of one case (policy_codes.h says the order). */
static __always_inline __u32 case_index(__u32 certified, __u32 op, __u32 class, __u32 key_window,
					__u32 lock, __u32 off)
{
	__u32 i = certified;
	i = i * POLICY_OPS + op;
	i = i * POLICY_CLASSES + class;
	i = i * 2 + key_window;
	i = i * POLICY_LOCKS + lock;
	return i * 2 + off;
}

/* 0 when the policy lets the current task do `op` (a POLICY_OP_*) to the entry `d` of `sb`,
 * whose file is `inode` (NULL: a name still free, which no mark names); else -EPERM, reported
 * with the case. A volume the kernel does not decide, and an entry nobody marked on one it
 * does, leave the decision to the rest of the shield (an unmarked entry is ordinary: the table
 * allows everything to it, and a lookup is spared). */
static __always_inline int policy_refused(__u32 op, struct super_block *sb, struct dentry *d,
					  struct inode *inode)
{
	if (!inode)
		return 0;
	__u32 dev = BPF_CORE_READ(sb, s_dev);
	struct shield_volume *v = bpf_map_lookup_elem(&kernel_volume, &dev);
	if (!v)
		return 0;
	struct shield_inode key = {
		.dev = inode_dev(inode),
		.ino = BPF_CORE_READ(inode, i_ino),
	};
	struct shield_mark *m = bpf_map_lookup_elem(&backup_mark, &key);
	if (!m)
		return 0;
	__u32 class = m->class;
	if (class >= POLICY_CLASSES || op >= POLICY_OPS)
		return -EPERM;
	__u32 certified = task_certified((struct task_struct *)bpf_get_current_task());
	__u32 index = case_index(certified, op, class, !!(v->flags & SHIELD_VOLUME_KEY_WINDOW),
				 POLICY_LOCK_NONE, !!(v->flags & SHIELD_VOLUME_PROTECTION_OFF));
	__u8 *verdict = bpf_map_lookup_elem(&verdicts, &index);
	/* Outside the table: refused. (The table is written at load, before any volume is in
	 * kernel_volume: an array map reads zero, Allow, where nothing was written.) */
	__u32 code = verdict ? *verdict : POLICY_VERDICT_DENY;
	if (code == POLICY_VERDICT_ALLOW)
		return 0;
	struct shield_event *e = new_event(SHIELD_OP_POLICY, dev);
	if (e) {
		e->ino = key.ino;
		e->policy_op = op;
		e->policy_class = class;
		e->verdict = code;
		e->certified = certified;
		fill_names(e, d);
		bpf_ringbuf_submit(e, 0);
	}
	return -EPERM;
}

/* The same for the entry `d`, whose file (if any) is its own. */
static __always_inline int policy_refused_entry(__u32 op, struct super_block *sb, struct dentry *d)
{
	return policy_refused(op, sb, d, BPF_CORE_READ(d, d_inode));
}

/* What opening `file` for writing asks of the policy (as the FUSE guard maps an open):
 * truncating it, appending to it, or writing it; 0 for a file the open just created. */
static __always_inline int policy_refused_open(struct file *file)
{
	if (BPF_CORE_READ(file, f_mode) & FMODE_CREATED)
		return 0;
	__u32 flags = BPF_CORE_READ(file, f_flags);
	__u32 op = (flags & O_TRUNC)	? POLICY_OP_TRUNCATE :
		   (flags & O_APPEND) ? POLICY_OP_OPEN_APPEND :
					POLICY_OP_OPEN_WRITE;
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	return policy_refused(op, BPF_CORE_READ(inode, i_sb), BPF_CORE_READ(file, f_path.dentry),
			      inode);
}

#endif
