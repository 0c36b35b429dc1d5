// SPDX-License-Identifier: GPL-2.0
/* The kernel shield: one object, so that every hook family shares the same maps; each family
 * in a file of its own. */
#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "shield.h"
#include "policy_codes.h"

char LICENSE[] SEC("license") = "GPL";

#include "maps.bpf.h"
#include "certify.bpf.h"
#include "tasks.bpf.h"
#include "decide.bpf.h"
#include "files.bpf.h"
#include "mounts.bpf.h"
#include "self.bpf.h"
