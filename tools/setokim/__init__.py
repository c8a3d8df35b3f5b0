"""setokim — SeTok Studio's PyTorch side: the reference transcriptions the C engine is tested
against, and (later) the training code for the default bundle.

Modules:
    setok   SeTok clustering (density peaks, soft, fixed-k), the 2-D position embedding and
            the cluster merger (SetokMerger, save_pretrained / from_pretrained).
    world   the synthetic world (scenes, exact masks, annotations, edit targets) through
            ctypes on libsetok.
"""
