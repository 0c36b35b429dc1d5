// SPDX-License-Identifier: GPL-2.0
/* The certification facts the kernel gathers itself (included by shield.bpf.c): what a
 * certified program's process is started with, and the code that arrives in it afterwards.
 * Its certification ends, for that process's life and what it forks, at
 * - exec, when its start-up environment sets a variable the policy core's environment rules
 *   name for its runtimes (POLICY_ENV_RULE, generated from the core), or, for a Python program
 *   without the user site turned off, HOME is unset or not one of its certified homes;
 * - an executable mapping (mmap, mprotect) of a file outside its closure (closure_file), or of
 *   anonymous memory;
 * - a Python program's open of a file it could import code from (POLICY_PYTHON_SUFFIX) that is
 *   outside its closure;
 * - PTRACE_TRACEME (its parent would trace it).
 * An ended certification is reported (SHIELD_OP_UNCERTIFIED) and kept in certified_task with
 * `ended` set, so that what the process forks inherits it. */
#ifndef IMAGEGUARD_CERTIFY_BPF_H
#define IMAGEGUARD_CERTIFY_BPF_H


/* The maps' layouts (shield.h) hold what the policy core compiles. */
_Static_assert(SHIELD_ENV_NAME == POLICY_ENV_NAME, "env names: shield.h and the policy core");
_Static_assert(SHIELD_HOME_LEN == POLICY_HOME_LEN, "homes: shield.h and the policy core");

/* The start-up strings are read this many bytes at a time, in at most this many reads (16 MiB:
 * more than the kernel lets an exec pass; a longer environment ends the certification). */
#define ENV_CHUNK 256
#define ENV_STEPS (1 << 16)

struct env_scratch {
	char chunk[ENV_CHUNK];
	struct shield_env_name key;
	struct shield_home home;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct env_scratch);
} env_scratch SEC(".maps");

/* The scan of a new program's start-up strings (argv, then envp). */
struct env_scan {
	unsigned long cursor;
	/* Strings read whole, and how many there are (argc + envc); the first `argc` are argv. */
	__u32 index;
	__u32 total;
	__u32 argc;
	__u32 runtimes;
	/* The cursor is inside a string that began in an earlier chunk. */
	__u32 in_long;
	__u32 done;
	/* enum shield_uncertified, 0: none (yet). */
	__u32 refused;
	/* HOME's value length + 1 (0: unset; SHIELD_HOME_LEN + 1: too long to be a home); the
	 * value itself is in the scratch's home. */
	__u32 home_len;
	__u32 no_user_site;
	char name[SHIELD_NAME_LEN];
};

/* The byte loops below run as bpf_loop callbacks, each verified once instead of unrolled into
 * every path that reaches it. */

/* Where the first '=' (or NUL) of the scratch's chunk is. */
struct find_eq {
	struct env_scratch *s;
	__u32 at;
	/* 1: a NUL came first (no '='). */
	__u32 nul;
};

static long find_eq_step(__u64 i, void *ctx)
{
	struct find_eq *f = ctx;
	char c = f->s->chunk[i & (ENV_CHUNK - 1)];
	if (c == '=' || c == 0) {
		f->at = i;
		f->nul = c == 0;
		return 1;
	}
	return 0;
}

/* Zero a buffer of SIZE bytes (a power of two) from `from` on: bpf_loop(SIZE - from,
 * zero_step_SIZE, ...), one callback per size so that the verifier sees each access bounded. */
struct zero_tail {
	char *buf;
	__u32 from;
};

#define ZERO_STEP(SIZE)                                          \
	static long zero_step_##SIZE(__u64 i, void *ctx)         \
	{                                                        \
		struct zero_tail *z = ctx;                       \
		z->buf[(z->from + i) & ((SIZE) - 1)] = 0;        \
		return 0;                                        \
	}
ZERO_STEP(32)
ZERO_STEP(64)
ZERO_STEP(128)
_Static_assert(SHIELD_ENV_NAME == 32 && SHIELD_NAME_LEN == 64 && SHIELD_HOME_LEN == 128,
	       "zero_step_* sizes");

/* The scratch's key: the first `len` bytes of its chunk, NUL-padded. */
static __always_inline void name_key(struct env_scratch *s, __u32 len)
{
	bpf_probe_read_kernel(s->key.name, SHIELD_ENV_NAME, s->chunk);
	if (len >= SHIELD_ENV_NAME)
		return;
	struct zero_tail z = { .buf = s->key.name, .from = len };
	bpf_loop(SHIELD_ENV_NAME - len, zero_step_32, &z, 0);
}

/* One start-up string "NAME=VALUE", the first ENV_CHUNK bytes of it in the scratch's chunk,
 * `n` as bpf_probe_read_user_str returned (ENV_CHUNK: perhaps longer). */
static __always_inline void env_variable(struct env_scan *w, struct env_scratch *s, long n)
{
	const char *chunk = s->chunk;
	/* Where its name ends; beyond SHIELD_ENV_NAME bytes only prefixes can name it. */
	struct find_eq f = { .s = s, .at = SHIELD_ENV_NAME + 1 };
	bpf_loop(SHIELD_ENV_NAME + 1, find_eq_step, &f, 0);
	if (f.nul)
		return; /* no '=': not a variable */
	__u32 name_len = f.at;
	if (name_len > SHIELD_ENV_NAME)
		name_len = SHIELD_ENV_NAME + 1;
	/* An empty value is unset. */
	if (name_len <= SHIELD_ENV_NAME && chunk[(name_len + 1) & (ENV_CHUNK - 1)] == 0)
		return;
	if (name_len == 4 && chunk[0] == 'H' && chunk[1] == 'O' && chunk[2] == 'M' &&
	    chunk[3] == 'E') {
		bpf_probe_read_kernel(s->home.home, SHIELD_HOME_LEN, chunk + 5);
		long value = n - 6;
		w->home_len = n < ENV_CHUNK && value < SHIELD_HOME_LEN ? value + 1 : SHIELD_HOME_LEN + 1;
		return;
	}
	__u32 refused = 0;
	if (name_len <= SHIELD_ENV_NAME) {
		name_key(s, name_len);
		__u32 *m = bpf_map_lookup_elem(&env_exact, &s->key);
		if (m) {
			if (*m & SHIELD_ENV_NO_USER_SITE)
				w->no_user_site = 1;
			refused = *m & w->runtimes & ~SHIELD_ENV_NO_USER_SITE;
			goto decided;
		}
	}
	for (int k = 0; k < POLICY_ENV_PREFIX_LENGTHS; k++) {
		__u32 len = POLICY_ENV_PREFIX_LENGTH[k];
		if (len > name_len)
			break;
		name_key(s, len);
		__u32 *m = bpf_map_lookup_elem(&env_prefix, &s->key);
		if (m)
			refused |= *m & w->runtimes;
	}
decided:
	if (!refused)
		return;
	w->refused = SHIELD_UNCERTIFIED_VARIABLE;
	bpf_probe_read_kernel(w->name, SHIELD_NAME_LEN - 1, chunk);
	w->name[SHIELD_NAME_LEN - 1] = 0;
	if (name_len < SHIELD_NAME_LEN - 1) {
		struct zero_tail z = { .buf = w->name, .from = name_len };
		bpf_loop(SHIELD_NAME_LEN - 1 - name_len, zero_step_64, &z, 0);
	}
}

static long env_step(__u64 i, void *ctx)
{
	struct env_scan *w = ctx;
	if (w->index >= w->total) {
		w->done = 1;
		return 1;
	}
	__u32 zero = 0;
	struct env_scratch *s = bpf_map_lookup_elem(&env_scratch, &zero);
	if (!s) {
		w->refused = SHIELD_UNCERTIFIED_UNREADABLE;
		return 1;
	}
	long n = bpf_probe_read_user_str(s->chunk, ENV_CHUNK, (void *)w->cursor);
	if (n <= 0) {
		w->refused = SHIELD_UNCERTIFIED_UNREADABLE;
		return 1;
	}
	int starts = !w->in_long;
	__u32 at = w->index;
	if (n == ENV_CHUNK) {
		/* Perhaps longer: go on from its last byte read (a string of exactly ENV_CHUNK - 1
		 * bytes then reads as an empty rest). */
		w->cursor += ENV_CHUNK - 1;
		w->in_long = 1;
	} else {
		w->cursor += n;
		w->in_long = 0;
		w->index++;
	}
	if (starts && at >= w->argc) {
		env_variable(w, s, n);
		if (w->refused)
			return 1;
	}
	return 0;
}

/* The length of the scratch's home without trailing slashes (a bpf_loop over its bytes). */
struct trim_home {
	struct env_scratch *s;
	__u32 len;
	__u32 trimmed;
};

static long trim_step(__u64 i, void *ctx)
{
	struct trim_home *t = ctx;
	if (i >= t->len)
		return 1;
	if (t->s->home.home[i & (SHIELD_HOME_LEN - 1)] != '/')
		t->trimmed = i + 1;
	return 0;
}

/* Whether HOME (the scan's, in the scratch's home) is one of program `id`'s certified homes,
 * trailing slashes aside. */
static __always_inline int home_certified(struct env_scan *w, struct env_scratch *s, __u32 id)
{
	if (w->home_len == 0 || w->home_len > SHIELD_HOME_LEN)
		return 0;
	struct trim_home t = { .s = s, .len = w->home_len - 1 };
	bpf_loop(SHIELD_HOME_LEN, trim_step, &t, 0);
	if (t.trimmed < SHIELD_HOME_LEN) {
		struct zero_tail z = { .buf = s->home.home, .from = t.trimmed };
		bpf_loop(SHIELD_HOME_LEN - t.trimmed, zero_step_128, &z, 0);
	}
	s->home.program = id;
	return bpf_map_lookup_elem(&certified_home, &s->home) != 0;
}

/* Report that the current process's certification ended, and why; `name` (NULL: none) the
 * variable or file, `d` (NULL: none) the file's entry. */
static __always_inline void report_uncertified(__u32 why, const char *name, struct dentry *d)
{
	struct shield_event *e = new_event(SHIELD_OP_UNCERTIFIED, 0);
	if (!e)
		return;
	e->signal = why;
	e->depth = 1;
	/* A variable's name or HOME's value is whole; a file is named by its last component. */
	e->complete = !d;
	if (d) {
		e->ino = BPF_CORE_READ(d, d_inode, i_ino);
		e->dev = BPF_CORE_READ(d, d_sb, s_dev);
		bpf_probe_read_kernel_str(e->names[0], SHIELD_NAME_LEN, BPF_CORE_READ(d, d_name.name));
	} else if (name) {
		bpf_probe_read_kernel_str(e->names[0], SHIELD_NAME_LEN, name);
	}
	bpf_ringbuf_submit(e, 0);
}

/* The new program of an exec that opened the certified program `key` starts: certified unless
 * its start-up strings say otherwise (then marked ended, and reported). */
static __always_inline void certify_exec(struct task_struct *task, struct linux_binprm *bprm,
					 struct shield_inode *key)
{
	__u32 tgid = BPF_CORE_READ(task, tgid);
	struct shield_program *p = bpf_map_lookup_elem(&certified_exe, key);
	if (!p) {
		bpf_map_delete_elem(&certified_task, &tgid);
		return;
	}
	struct shield_certified c = {
		.start = BPF_CORE_READ(task, group_leader, start_boottime),
		.program = p->id,
		.runtimes = p->runtimes,
	};
	struct env_scan w = {};
	w.cursor = BPF_CORE_READ(bprm, p);
	w.argc = BPF_CORE_READ(bprm, argc);
	w.total = w.argc + BPF_CORE_READ(bprm, envc);
	w.runtimes = p->runtimes;
	bpf_loop(ENV_STEPS, env_step, &w, 0);
	if (!w.refused && !w.done)
		w.refused = SHIELD_UNCERTIFIED_UNREADABLE;
	__u32 zero = 0;
	struct env_scratch *s = bpf_map_lookup_elem(&env_scratch, &zero);
	if (!w.refused && (p->runtimes & POLICY_RUNTIME_PYTHON) && !w.no_user_site &&
	    (!s || !home_certified(&w, s, p->id))) {
		w.refused = SHIELD_UNCERTIFIED_HOME;
		if (s && w.home_len && w.home_len <= SHIELD_HOME_LEN)
			bpf_probe_read_kernel_str(w.name, sizeof(w.name), s->home.home);
	}
	c.ended = w.refused != 0;
	bpf_map_update_elem(&certified_task, &tgid, &c, BPF_ANY);
	if (w.refused)
		report_uncertified(w.refused, w.name, 0);
}

/* The certification `task` has: its thread group's, marked at exec, or that of the one it was
 * forked from (without executing anything since), up to four generations; NULL: none. `owner`
 * is set to the task whose record it is. */
static __always_inline struct shield_certified *certification_of(struct task_struct *task,
								 struct task_struct **owner)
{
	struct file *exe = BPF_CORE_READ(task, mm, exe_file);
	if (!exe)
		return 0;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		__u32 tgid = BPF_CORE_READ(task, tgid);
		struct shield_certified *c = bpf_map_lookup_elem(&certified_task, &tgid);
		if (c && c->start == BPF_CORE_READ(task, group_leader, start_boottime)) {
			*owner = task;
			return c;
		}
		struct task_struct *parent = BPF_CORE_READ(task, real_parent);
		/* A fork shares its parent's executable file; an exec opens its own. */
		if (!parent || parent == task || BPF_CORE_READ(parent, mm, exe_file) != exe)
			return 0;
		task = parent;
	}
	return 0;
}

/* The certification the current process has, NULL: none. */
static __always_inline struct shield_certified *current_certification(struct task_struct **owner)
{
	return certification_of((struct task_struct *)bpf_get_current_task(), owner);
}

/* Whether `task` runs a certified program whose certification has not ended. */
static __always_inline int task_certified(struct task_struct *task)
{
	struct task_struct *owner = 0;
	struct shield_certified *c = certification_of(task, &owner);
	return c && !c->ended;
}

/* End the current process's certification `c` (held by `owner`: the process itself, or the one
 * it forked from, whose own goes on). */
static __always_inline void end_certification(struct shield_certified *c, struct task_struct *owner,
					      __u32 why, struct dentry *d)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u32 tgid = BPF_CORE_READ(task, tgid);
	if (owner && BPF_CORE_READ(owner, tgid) == tgid) {
		c->ended = 1;
	} else {
		struct shield_certified mine = {
			.start = BPF_CORE_READ(task, group_leader, start_boottime),
			.program = c->program,
			.runtimes = c->runtimes,
			.ended = 1,
		};
		bpf_map_update_elem(&certified_task, &tgid, &mine, BPF_ANY);
	}
	report_uncertified(why, 0, d);
}

/* Code of `file` (NULL: anonymous memory) arrives in the current process: outside its closure,
 * that ends its certification. */
static __always_inline void code_arrives(struct file *file, __u32 why)
{
	struct task_struct *owner = 0;
	struct shield_certified *c = current_certification(&owner);
	if (!c || c->ended)
		return;
	if (!file) {
		end_certification(c, owner, SHIELD_UNCERTIFIED_ANONYMOUS_CODE, 0);
		return;
	}
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	struct shield_code key = {
		.program = c->program,
		.dev = inode_dev(inode),
		.ino = BPF_CORE_READ(inode, i_ino),
	};
	if (bpf_map_lookup_elem(&closure_file, &key))
		return;
	end_certification(c, owner, why, BPF_CORE_READ(file, f_path.dentry));
}

SEC("lsm/mmap_file")
int BPF_PROG(shield_mmap_file, struct file *file, unsigned long reqprot, unsigned long prot,
	     unsigned long flags)
{
	if (prot & PROT_EXEC)
		code_arrives(file, SHIELD_UNCERTIFIED_FOREIGN_CODE);
	return 0;
}

SEC("lsm/file_mprotect")
int BPF_PROG(shield_file_mprotect, struct vm_area_struct *vma, unsigned long reqprot,
	     unsigned long prot)
{
	if ((prot & PROT_EXEC) && !(BPF_CORE_READ(vma, vm_flags) & VM_EXEC))
		code_arrives(BPF_CORE_READ(vma, vm_file), SHIELD_UNCERTIFIED_FOREIGN_CODE);
	return 0;
}

/* Whether the name of `d` ends as a file Python imports code from. */
static __always_inline int python_importable(struct dentry *d)
{
	__u32 zero = 0;
	struct env_scratch *s = bpf_map_lookup_elem(&env_scratch, &zero);
	if (!s)
		return 1;
	long n = bpf_probe_read_kernel_str(s->chunk, ENV_CHUNK, BPF_CORE_READ(d, d_name.name));
	if (n <= 1)
		return 0;
	__u32 len = n - 1;
	for (int k = 0; k < POLICY_PYTHON_SUFFIXES; k++) {
		const struct policy_name *suffix = &POLICY_PYTHON_SUFFIX[k];
		__u32 sl = suffix->len;
		if (sl > len || sl > 8)
			continue;
		int same = 1;
		for (int i = 0; i < 8; i++) {
			if (i >= sl)
				break;
			if (s->chunk[(len - sl + i) & (ENV_CHUNK - 1)] != suffix->name[i]) {
				same = 0;
				break;
			}
		}
		if (same)
			return 1;
	}
	return 0;
}

/* A file opened for reading: by a certified Python program, a module from outside its closure
 * ends its certification. */
static __always_inline void module_opened(struct file *file)
{
	struct task_struct *owner = 0;
	struct shield_certified *c = current_certification(&owner);
	if (!c || c->ended || !(c->runtimes & POLICY_RUNTIME_PYTHON))
		return;
	struct inode *inode = BPF_CORE_READ(file, f_inode);
	if ((BPF_CORE_READ(inode, i_mode) & S_IFMT) != S_IFREG)
		return;
	struct dentry *d = BPF_CORE_READ(file, f_path.dentry);
	if (!python_importable(d))
		return;
	struct shield_code key = {
		.program = c->program,
		.dev = inode_dev(inode),
		.ino = BPF_CORE_READ(inode, i_ino),
	};
	if (!bpf_map_lookup_elem(&closure_file, &key))
		end_certification(c, owner, SHIELD_UNCERTIFIED_FOREIGN_MODULE, d);
}

SEC("lsm/ptrace_traceme")
int BPF_PROG(shield_ptrace_traceme, struct task_struct *parent)
{
	struct task_struct *owner = 0;
	struct shield_certified *c = current_certification(&owner);
	if (c && !c->ended)
		end_certification(c, owner, SHIELD_UNCERTIFIED_TRACEME, 0);
	return 0;
}

#endif
