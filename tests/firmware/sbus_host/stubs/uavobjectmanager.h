/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Host stand-in: pios_sbus.c includes this but uses nothing from it. Test code only. */
