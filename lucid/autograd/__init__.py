"""Reverse-mode automatic differentiation: Function, the backward engine, grad mode."""
from lucid.autograd.engine import queue_callback
from lucid.autograd.function import Function
from lucid.autograd.grad_mode import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from lucid.autograd.gradcheck import gradcheck

__all__ = ["Function", "enable_grad", "gradcheck", "is_grad_enabled", "no_grad", "queue_callback", "set_grad_enabled"]
