/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Host stand-in: nothing from the USART driver is needed. Test code only. */
