// network.cpp: forward, back-propagation and one training epoch over the layer stack.
#include "kernels.h"
