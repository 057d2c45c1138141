// hqflow_stream_lif: a LIF alone on a stream (the Spike-driven Transformer's neurons on its residual
// path), exactly numerics lif_step with one channel of constants for every element (hqflow_lif.v):
//   per element and t = 0 .. T-1:  h = (v + (x[t] << F) + (BIAS << T)) >>> 1,  s[t] = fire(h),  v = s ? 0 : h
// Stream in:  elements, each the T values x[0..T-1] of one position and channel, IN_BITS each (two's
//             complement when IN_SIGNED), step t in bits [t*IN_BITS, (t+1)*IN_BITS).
// Stream out: the same elements, each its T spikes (bit t = step t); tlast follows the input's.
// An element: taken (1 cycle), its T steps (T cycles, the membrane in a register), handed out (1 cycle,
// once the output is free). `active` is high in those cycles: SIZE (T + 2) per image.
module hqflow_stream_lif #(
    parameter integer SIZE = 1, T = 1, IN_BITS = 1, IN_SIGNED = 1, V_BITS = 2, F = 0,
    parameter [63:0] BIAS = 64'd0, THR = 64'd0,      // bias_int, thr_int (>= 0), two's complement
    parameter [1:0] SIGN = 2'b01                     // 2'b01: +1, 2'b11: -1, 2'b00: 0
) (
    input  wire                  clk,
    input  wire                  rst,
    input  wire                  s_tvalid,
    output wire                  s_tready,
    input  wire [T*IN_BITS-1:0]  s_tdata,
    input  wire                  s_tlast,
    output reg                   m_tvalid,
    input  wire                  m_tready,
    output reg  [T-1:0]          m_tdata,
    output reg                   m_tlast,
    output wire                  active
);
    localparam integer ACC_BITS = IN_BITS + 1;       // x[t] sign- or zero-extended
    localparam integer TB = T > 1 ? $clog2(T) : 1;
    generate
        if (SIZE < 1 || T < 1 || IN_BITS < 1 || IN_BITS > 63 || V_BITS < 2 || V_BITS > 64)
            $error("hqflow_stream_lif: SIZE %0d, T %0d, IN_BITS %0d (1..63), V_BITS %0d (2..64)", SIZE, T, IN_BITS,
                   V_BITS);
        if (SIGN != 2'b01 && SIGN != 2'b11 && SIGN != 2'b00)
            $error("hqflow_stream_lif: SIGN %b is none of 01, 11, 00", SIGN);
    endgenerate

    reg busy;                            // an element's steps are running
    reg [TB-1:0] t;
    reg [T*IN_BITS-1:0] x;
    reg last;
    reg [V_BITS-1:0] v;
    reg [T-1:0] spikes;
    wire take = s_tvalid && !busy && !m_tvalid;
    wire give = m_tvalid && m_tready;
    assign s_tready = take;
    assign active = take || busy || give;

    wire [IN_BITS-1:0] x_t = x[t*IN_BITS +: IN_BITS];
    wire [ACC_BITS-1:0] acc = {IN_SIGNED != 0 && x_t[IN_BITS-1], x_t};
    wire [V_BITS-1:0] v_next;
    wire spike;
    hqflow_lif #(.P(1), .ACC_BITS(ACC_BITS), .V_BITS(V_BITS), .F(F), .T(T)) lif (
        .first(t == 0), .acc(acc), .v(v), .bias(BIAS[V_BITS-1:0]), .thr(THR[V_BITS-1:0]), .sign(SIGN),
        .v_next(v_next), .spikes(spike));

    always @(posedge clk) begin
        if (give) m_tvalid <= 0;
        if (take) begin
            busy <= 1; t <= 0; x <= s_tdata; last <= s_tlast; spikes <= 0;
        end else if (busy) begin
            v <= v_next;
            spikes[t] <= spike;
            if (t == T - 1) begin
                busy <= 0; m_tvalid <= 1; m_tlast <= last;
                m_tdata <= spikes | (({T{1'b0}} | spike) << t);
            end else
                t <= t + 1'b1;
        end
        if (rst) begin busy <= 0; m_tvalid <= 0; end
    end
    initial begin busy = 0; m_tvalid = 0; t = 0; v = 0; end
endmodule
