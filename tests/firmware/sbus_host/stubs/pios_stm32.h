/* SPDX-License-Identifier: GPL-3.0-or-later */
/* Host stand-in: the one STM32 type pios_sbus_priv.h needs. Test code only. */
#ifndef SBUS_HOST_PIOS_STM32_H
#define SBUS_HOST_PIOS_STM32_H
#include "pios.h"
struct stm32_gpio {
    void             *gpio;
    GPIO_InitTypeDef init;
};
#endif
