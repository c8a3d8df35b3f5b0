"""setokim — SeTok Studio's PyTorch side: the reference transcriptions the C engine is tested
against, and (later) the training code for the default bundle.

Modules:
    setok   SeTok clustering (density peaks, soft, fixed-k), the 2-D position embedding and
            the cluster merger (SetokMerger, save_pretrained / from_pretrained).
    world   the synthetic world (scenes, exact masks, annotations, edit targets) through
            ctypes on libsetok.
    bundle  the SETOKIM bundle contract: manifest, prompt format, tokenizer recipe, projector
            and SetokimModel (the numerics reference for the engine's SETOKIM pipelines).
    data    training data from the world: seed ranges, cached scene sets, targets.
    train   the training stages (python -m tools.setokim.train; README.md).
"""
